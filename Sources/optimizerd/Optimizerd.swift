import ArgumentParser

/// `optimizerd`: the optimizer-as-a-service daemon. `serve` is the default subcommand.
@main
struct Optimizerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimizerd",
        abstract: "Run optimizer steps for training loops over HTTP: gradients in, updated parameters out.",
        discussion: """
            `optimizerd` (same as `optimizerd serve`) starts the daemon on 127.0.0.1:8080. Every flag \
            of `serve` can also come from an environment variable; a flag given on the command line wins.

            \(ServeFlag.table)
            """,
        subcommands: [Serve.self, Probe.self],
        defaultSubcommand: Serve.self
    )
}
