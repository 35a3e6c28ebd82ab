import FlexTensor

/// The boards FlexMoE targets, compiled into the binary so `--board NAME` works on a board with
/// nothing else installed. Boards/NAME.board holds the same facts for the build scripts; a test keeps
/// the two in agreement.
public struct BoardProfile: Equatable, Sendable {
    public var name: String
    public var title: String
    public var cpu: String
    public var ramMiB: Int
    /// Default `--memory-budget` (MiB): what the runtime may use, leaving the OS and others room.
    public var defaultBudgetMiB: Int
    /// Default k_c the profile is sized for (the planner may derive more or fewer from the budget).
    public var defaultKc: Int

    public static let all: [BoardProfile] = [
        BoardProfile(name: "pi-zero-2w", title: "Raspberry Pi Zero 2 W", cpu: "cortex-a53", ramMiB: 512, defaultBudgetMiB: 48, defaultKc: 2),
        BoardProfile(name: "pi-3b", title: "Raspberry Pi 3 Model B", cpu: "cortex-a53", ramMiB: 1024, defaultBudgetMiB: 96, defaultKc: 4),
        BoardProfile(name: "pi-4b", title: "Raspberry Pi 4 Model B (2 GB)", cpu: "cortex-a72", ramMiB: 2048, defaultBudgetMiB: 256, defaultKc: 8),
        BoardProfile(name: "pi-5", title: "Raspberry Pi 5 (4 GB)", cpu: "cortex-a76", ramMiB: 4096, defaultBudgetMiB: 512, defaultKc: 16),
    ]

    public static func named(_ name: String) -> BoardProfile? { all.first { $0.name == name } }

    public var defaultBudgetBytes: Int { defaultBudgetMiB * 1024 * 1024 }
}
