import FacetTransport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Synchronous sockets")
struct SocketTests {
    @Test func reqRepOverInproc() throws {
        let context = try ZMQContext()
        let rep = try ZMQSocket(context: context, type: .rep)
        try rep.bind("inproc://reqrep")
        let req = try ZMQSocket(context: context, type: .req)
        try req.connect("inproc://reqrep")
        for i in 0..<10 {
            try req.send(Multipart(strings: ["ping", "\(i)"]))
            let got = try rep.receive(timeout: generous)
            #expect(got.frames == [bytes("ping"), bytes("\(i)")])
            try rep.send(Multipart(strings: ["pong", "\(i)"]))
            #expect(try req.receive(timeout: generous).frames == [bytes("pong"), bytes("\(i)")])
        }
    }

    @Test func nonBlockingReceiveReturnsNilAndTimedReceiveThrows() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("inproc://quiet")
        #expect(try pull.receive(dontWait: true) == nil)
        #expect(throws: TransportError.timedOut(operation: "receive on PULL")) { try pull.receive(timeout: .milliseconds(20)) }
    }

    @Test func errorsNameTheCallAndErrno() throws {
        let context = try ZMQContext()
        let s = try ZMQSocket(context: context, type: .dealer)
        do {
            try s.bind("nonsense://nowhere")
            Issue.record("bind succeeded")
        } catch {
            guard case .zmq(let z) = error else { Issue.record("unexpected \(error)"); return }
            #expect(z.function == "zmq_bind(nonsense://nowhere)")
            #expect(z.errno == EPROTONOSUPPORT)
            #expect(z.description.contains("zmq_bind(nonsense://nowhere) failed"))
        }
        // A port in use: EADDRINUSE from the second bind.
        let a = try ZMQSocket(context: context, type: .router)
        let endpoint = try a.bind("tcp://127.0.0.1:*")
        let b = try ZMQSocket(context: context, type: .router)
        #expect(throws: TransportError.zmq(ZMQError(function: "zmq_bind(\(endpoint))", errno: EADDRINUSE))) {
            try b.bind(endpoint)
        }
        s.close()
        #expect(throws: TransportError.closed) { try s.send(Multipart([bytes("x")])) }
    }

    @Test func pollerReportsReadableSocket() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("inproc://poll")
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect("inproc://poll")
        var poller = ZMQPoller()
        let i = poller.add(pull, events: .readable)
        #expect(try poller.poll(timeout: .zero) == 0)
        try push.send(Multipart([bytes("ready")]))
        #expect(try poller.poll(timeout: generous) == 1)
        #expect(poller.readyEvents(at: i).contains(.readable))
        #expect(try pull.receive(dontWait: true)?.frames == [bytes("ready")])
    }

    @Test func tooManyInboundFramesAreDrainedAndFlagged() throws {
        let context = try ZMQContext()
        var o = SocketOptions()
        o.maxFrames = 4
        let pull = try ZMQSocket(context: context, type: .pull, options: o)
        try pull.bind("inproc://frames")
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect("inproc://frames")
        try push.send(Multipart((0..<10).map { [UInt8($0)] }))
        try push.send(Multipart([bytes("next")]))
        let m = try pull.receive(timeout: generous)
        #expect(m.limitViolation == .tooManyFrames(count: 10, limit: 4))
        #expect(m.frames.count == 4)
        // The rest of the oversized message was drained: the next message is intact.
        #expect(try pull.receive(timeout: generous).frames == [bytes("next")])
    }
}
