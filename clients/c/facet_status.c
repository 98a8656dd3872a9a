/* Facet C example: ask a coordinator for its status with libzmq and protobuf-c.
 *
 *   make -C clients/c && clients/c/facet_status tcp://127.0.0.1:5555 [timeout_ms]
 *
 * With $FACET_KEYS set (the directory `facet cluster up` prints: client.key, client.key_secret and the
 * coordinator's coordinator.key, Z85 text) the socket uses CURVE, as every client of a secured cluster must.
 *
 * Framing (docs/wire.md): a REQ socket adds the empty delimiter frame itself, so the request is
 * one frame holding a serialised facet.v1.Envelope; the reply is one Envelope frame with the
 * same request id. A REQ socket cannot time out by itself, so the example polls with a deadline
 * and gives up cleanly (exit 3) when no answer comes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <zmq.h>

#include "facet.pb-c.h"

static int64_t now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Reads the 40-character Z85 key in DIR/NAME into out (41 bytes with the NUL); 0 on success. */
static int read_key(const char *dir, const char *name, char out[41]) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    size_t n = fread(out, 1, 40, f);
    fclose(f);
    out[40] = 0;
    if (n != 40) {
        fprintf(stderr, "%s does not hold a Z85 key\n", path);
        return -1;
    }
    return 0;
}

/* CURVE client settings from $FACET_KEYS, if set; 0 on success (or when not set). */
static int set_curve(void *sock) {
    const char *dir = getenv("FACET_KEYS");
    if (dir == NULL || *dir == 0) return 0;
    char server[41], public_key[41], secret[41];
    if (read_key(dir, "coordinator.key", server) || read_key(dir, "client.key", public_key) ||
        read_key(dir, "client.key_secret", secret))
        return -1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, 41) || zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, public_key, 41) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 41)) {
        fprintf(stderr, "CURVE keys rejected: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:5555";
    int timeout_ms = argc > 2 ? atoi(argv[2]) : 5000;
    int rc = 1;

    Facet__V1__StatusRequest status = FACET__V1__STATUS_REQUEST__INIT;
    status.include_partitions = 1;
    Facet__V1__Envelope req = FACET__V1__ENVELOPE__INIT;
    req.protocol_version = FACET__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_1;
    req.request_id = "c-example-1";
    req.client_id = "facet_status.c";
    req.sent_unix_ms = now_ms();
    req.deadline_unix_ms = req.sent_unix_ms + timeout_ms;
    req.body_case = FACET__V1__ENVELOPE__BODY_STATUS_REQUEST;
    req.status_request = &status;

    size_t len = facet__v1__envelope__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    facet__v1__envelope__pack(&req, buf);

    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    int64_t max_msg = 16 << 20;
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    if (set_curve(sock) != 0) goto done;
    if (zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "zmq_connect(%s): %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    if (zmq_send(sock, buf, len, 0) < 0) {
        fprintf(stderr, "zmq_send: %s\n", zmq_strerror(zmq_errno()));
        goto done;
    }
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0) {
        fprintf(stderr, "no reply from %s within %d ms\n", endpoint, timeout_ms);
        rc = 3;
        goto done;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, sock, 0) < 0) {
        fprintf(stderr, "zmq_msg_recv: %s\n", zmq_strerror(zmq_errno()));
        zmq_msg_close(&msg);
        goto done;
    }
    Facet__V1__Envelope *rep = facet__v1__envelope__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
    zmq_msg_close(&msg);
    if (rep == NULL) {
        fprintf(stderr, "malformed reply\n");
        goto done;
    }
    if (strcmp(rep->request_id, req.request_id) != 0) {
        fprintf(stderr, "reply to another request: %s\n", rep->request_id);
    } else if (rep->body_case == FACET__V1__ENVELOPE__BODY_ERROR) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&facet__v1__error_code__descriptor, rep->error->code);
        fprintf(stderr, "error %s: %s\n", v ? v->name : "?", rep->error->message);
        rc = 2;
    } else if (rep->body_case == FACET__V1__ENVELOPE__BODY_STATUS_REPLY) {
        Facet__V1__StatusReply *s = rep->status_reply;
        printf("subjects %llu templates %llu nodes %zu partitions %u healthy %s\n", (unsigned long long)s->subjects,
               (unsigned long long)s->templates, s->n_nodes, s->partition_count, s->healthy ? "yes" : "no");
        for (size_t i = 0; i < s->n_nodes; i++) printf("  node %s\n", s->nodes[i]->node_id);
        rc = 0;
    } else {
        fprintf(stderr, "unexpected reply kind %d\n", (int)rep->body_case);
    }
    facet__v1__envelope__free_unpacked(rep, NULL);
done:
    free(buf);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}
