import Testing

@testable import OptimizerServer

/// Reservations against the budget: what fits is held until released (or deallocated), what does
/// not fit is refused with the numbers, and the room for the largest session's step stays free
/// for steps only.
struct MemoryBudgetTests {
    @Test func reservationsAreHeldUntilReleased() throws {
        let budget = MemoryBudget(limit: 1000, source: "test")
        let body = try budget.reserve(300, for: .bodies, purpose: "this body")
        let copies = try budget.reserve(200, for: .staging, purpose: "this step")
        #expect(budget.used == 500)
        #expect(budget.used(.bodies) == 300 && budget.used(.staging) == 200 && budget.used(.sessions) == 0)
        body.release()
        body.release()  // idempotent
        #expect(budget.used == 200)
        copies.release()
        #expect(budget.used == 0)
    }

    /// Idle pooled buffers are kept while the reservations and they fit, released when a
    /// reservation would pass the limit with them; refusals still depend on reservations alone.
    @Test func idlePooledBuffersAreReleasedUnderPressure() throws {
        let megabyte = 1 << 20
        let pool = BufferPool()
        let budget = MemoryBudget(limit: 10 * megabyte, source: "test", pool: pool)
        pool.deallocate(pool.allocate(3 * megabyte))
        let first = try budget.reserve(5 * megabyte, for: .bodies, purpose: "this body")
        #expect(pool.usage.idleBytes == 3 * megabyte)  // 5 + 3 ≤ 10: kept
        let second = try budget.reserve(4 * megabyte, for: .staging, purpose: "this step")
        #expect(pool.usage.idleBytes == 0)  // 9 + 3 > 10: released, and the 4 fit
        pool.deallocate(pool.allocate(3 * megabyte))
        #expect(throws: MemoryBudgetExceeded.self) { try budget.reserve(2 * megabyte, for: .bodies, purpose: "too much") }
        #expect(pool.usage.idleBytes == 0)
        #expect(budget.used == 9 * megabyte)
        first.release()
        second.release()
    }

    /// What can make do with less (a snapshot's copy) takes the room there is, never the room kept
    /// for steps, and none when there is none.
    @Test func reservingUpToTakesWhatFits() throws {
        let budget = MemoryBudget(limit: 1000, source: "test")
        let session = MemoryReservation(budget: budget, kind: .sessions)
        try session.resize(to: 400, stepBytes: 300, purpose: "this upload")
        #expect(budget.reserve(upTo: 100, for: .staging, purpose: "a snapshot").bytes == 100)
        let partial = budget.reserve(upTo: 1000, for: .staging, purpose: "a snapshot")
        #expect(partial.bytes == 300)  // 1000 − 400 held − 300 kept for a step (the first one was released)
        #expect(budget.reserve(upTo: 50, for: .staging, purpose: "a snapshot").bytes == 0)
        partial.release()
        #expect(budget.used == 400)
    }

    @Test func deallocationReleases() throws {
        let budget = MemoryBudget(limit: 1000, source: "test")
        do {
            let held = try budget.reserve(400, for: .bodies, purpose: "this body")
            #expect(held.bytes == 400 && budget.used == 400)
        }
        #expect(budget.used == 0)
    }

    /// The room kept for a step is in the refusal, so its numbers add up (900 + 96 + 100 > 1024).
    @Test func aRefusalNamesTheRoomKeptForAStep() throws {
        let budget = MemoryBudget(limit: 1 << 30, source: "test")
        let sessions = budget.admit(900 << 20, for: .sessions, stepBytes: 96 << 20)
        #expect {
            _ = try budget.reserve(100 << 20, for: .bodies, purpose: "this upload")
        } throws: { error in
            (error as? MemoryBudgetExceeded)?.description
                == "--max-memory 1.0 GiB: 900 MiB in use, 96 MiB kept for a step, this upload needs 100 MiB"
        }
        sessions.release()
    }

    @Test func whatDoesNotFitIsRefusedAndNothingIsReserved() throws {
        let budget = MemoryBudget(limit: 1 << 30, source: "test")
        let sessions = try budget.reserve(900 << 20, for: .sessions, purpose: "this upload")
        #expect {
            _ = try budget.reserve(300 << 20, for: .bodies, purpose: "this upload")
        } throws: { error in
            let refusal = error as? MemoryBudgetExceeded
            return refusal?.description == "--max-memory 1.0 GiB: 900 MiB in use, this upload needs 300 MiB"
        }
        #expect(budget.used == 900 << 20)
        #expect(try budget.reserve(124 << 20, for: .bodies, purpose: "this upload").bytes == 124 << 20)  // exactly full
        sessions.release()
    }

    @Test func resizeGrowsOnlyWhenItFitsAndAlwaysShrinks() throws {
        let budget = MemoryBudget(limit: 1000, source: "test")
        let held = try budget.reserve(100, for: .sessions, purpose: "this upload")
        try held.resize(to: 900, purpose: "this upload")
        #expect(throws: MemoryBudgetExceeded.self) { try held.resize(to: 1001, purpose: "this upload") }
        #expect(held.bytes == 900 && budget.used == 900)
        try held.resize(to: 10, purpose: "this upload")
        #expect(budget.used == 10)
        held.force(to: 5000)  // already allocated memory is counted whether or not it fits
        #expect(budget.used == 5000)
        #expect(throws: MemoryBudgetExceeded.self) { _ = try budget.reserve(1, for: .bodies, purpose: "this body") }
    }

    @Test func theRoomForTheLargestStepIsKeptForSteps() throws {
        let budget = MemoryBudget(limit: 1000, source: "test")
        let small = try budget.reserve(0, for: .sessions, purpose: "this upload")
        try small.resize(to: 100, stepBytes: 50, purpose: "this upload")
        let large = try budget.reserve(0, for: .sessions, purpose: "this upload")
        try large.resize(to: 300, stepBytes: 200, purpose: "this upload")
        #expect(budget.stepRoom == 200)
        // 400 used, 200 kept: 400 more fit for sessions and their bodies, not 401.
        #expect(throws: MemoryBudgetExceeded.self) { _ = try budget.reserve(401, for: .bodies, purpose: "this upload") }
        let upload = try budget.reserve(400, for: .bodies, purpose: "this upload")
        upload.release()
        // A session whose own step room does not fit is refused, although its bytes would.
        let third = try budget.reserve(0, for: .sessions, purpose: "this upload")
        #expect(throws: MemoryBudgetExceeded.self) { try third.resize(to: 100, stepBytes: 600, purpose: "this upload") }
        #expect(budget.stepRoom == 200 && budget.used == 400)
        // Growing without naming a new step room keeps the session's own room free.
        #expect(throws: MemoryBudgetExceeded.self) { try large.resize(to: 701, purpose: "this change") }
        // Steps may use the room.
        let step = try budget.reserve(600, for: .bodies, purpose: "this step", isStep: true)
        #expect(budget.used == 1000)
        // Another step meanwhile only has to wait for that one's memory: transient (503, retried);
        // a step that would not fit even then, or anything else, is refused for good (507).
        let busy = #expect(throws: MemoryBudgetExceeded.self) { _ = try budget.reserve(600, for: .bodies, purpose: "this step", isStep: true) }
        #expect(busy?.isTransient == true)
        let tooLarge = #expect(throws: MemoryBudgetExceeded.self) { _ = try budget.reserve(601, for: .bodies, purpose: "this step", isStep: true) }
        #expect(tooLarge?.isTransient == false)
        // Nor one whose copies would fit alone but not beside the body its request already holds.
        let withItsBody = #expect(throws: MemoryBudgetExceeded.self) {
            _ = try budget.reserve(550, for: .staging, purpose: "this step", isStep: true, alongside: 100)
        }
        #expect(withItsBody?.isTransient == false)
        let notStep = #expect(throws: MemoryBudgetExceeded.self) { _ = try budget.reserve(1, for: .bodies, purpose: "this upload") }
        #expect(notStep?.isTransient == false)
        step.release()
        // Deleting the large session frees its bytes and its room.
        large.release()
        #expect(budget.stepRoom == 50 && budget.used == 100)
        small.release()
    }

    @Test(arguments: [
        (512, "512 B"), (64 << 10, "64 KiB"), (300 << 20, "300 MiB"), (1 << 30, "1.0 GiB"), (3 << 29, "1.5 GiB"),
        (80_530_636, "76.8 MiB"), (64 << 20, "64 MiB"), (900 << 20, "900 MiB"), (64 << 30, "64 GiB"),
    ])
    func byteCountsReadLikeTheFlag(bytes: Int, text: String) {
        #expect("\(ByteCount(bytes))" == text)
    }
}
