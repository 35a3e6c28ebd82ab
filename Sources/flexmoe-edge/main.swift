import CFlexSystem
import FlexEdge

/// flexmoe-edge: the FlexMoE device runtime. Embedded-clean: argv is parsed by hand.
let usage = """
    usage: flexmoe-edge <command> [options]

    commands:
      run          take part in federated training rounds (see `flexmoe-edge run --help`)
      selftest     check quantisation, kernels, the zstd container and local training on this machine
      help         show this text

    Run `flexmoe-edge selftest` after installing on a board: it prints `selftest ok` and exits 0.
    """

func main() -> Int32 {
    let args = Console.arguments()
    guard let command = args.first else {
        Console.out(usage)
        return 2
    }
    switch command {
    case "run":
        return RunCommand.run(Array(args.dropFirst()))
    case "selftest":
        return SelfTest.run()
    case "help", "--help", "-h":
        Console.out(usage)
        return 0
    default:
        Console.error("unknown command '\(command)'; try `flexmoe-edge --help`")
        return 2
    }
}

csys_exit(main())
