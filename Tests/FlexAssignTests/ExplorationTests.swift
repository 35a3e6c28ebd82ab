import Testing
@testable import FlexAssign

/// The exploration term: never-measured pairs look better to the solver, measured ones do not change.
@Suite struct ExplorationTests {
    @Test func theBonusLiftsOnlyUnmeasuredPairsInTheSolversView() {
        var q = FitnessMatrix(experts: 3, beta: 1, prior: .constant(0.5))
        q.addClient(7)
        q.update(client: 7, scores: [(expert: 1, score: 0.9)])
        #expect(q.matrix(for: [7]) == [0.5, 0.9, 0.5])
        q.explorationBonus = 0.2
        #expect(q.matrix(for: [7]) == [0.7, 0.9, 0.7])
        #expect(q.matrix(for: [8]) == [0.7, 0.7, 0.7], "an unknown client: every pair unmeasured")
        // The moving average of a first measurement starts from the prior, not the prior + bonus.
        var ema = FitnessMatrix(experts: 1, beta: 0.5, prior: .constant(0.5))
        ema.explorationBonus = 0.4
        ema.addClient(1)
        ema.update(client: 1, scores: [(expert: 0, score: 1)])
        #expect(ema.value(client: 1, expert: 0) == 0.75)
    }
}
