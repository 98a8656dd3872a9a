import ArgumentParser

/// The `facet` command line: a thin shell over the library targets.
/// Each subcommand lives in its own file in this folder.
@main
struct Facet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facet",
        abstract: "Masked-face recognition: embed, mask, evaluate, index, and run a matching cluster.",
        version: "0.1.0",
        subcommands: [
            Embed.self,
            MaskCommand.self,
            MaskDatasetCommand.self,
            MaskTrainCommand.self,
            MaskHeadsCommand.self,
            ActivationsCommand.self,
            Bench.self,
            EvalCommand.self,
            Serve.self,
            Cluster.self,
            Enroll.self,
            Identify.self,
            Verify.self,
            Delete.self,
            Status.self,
            Keys.self,
            Audit.self,
            Jobs.self,
            Retrain.self,
            EnrollBatch.self,
            SwitchModel.self,
            PurgeModel.self,
            Shards.self,
            Subjects.self,
        ]
    )
}
