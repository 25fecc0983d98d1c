import EMCCore
import EMCReports
import EMCSearch
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

@Suite("The paper's protocol by name")
struct ProtocolTests {
    @Test("the preset: threshold, optimizer, batch, step budget and cadence; what the user set stays; a scaled budget scales the cadence and says so")
    func preset() throws {
        let base = try SearchSettings(data: "d", model: "mlp")
        let paper = try TrainingProtocol.paper.apply(to: base)
        #expect(paper.training.fitThreshold == 0.995 && paper.training.batch == 640)
        #expect(paper.optimizer.text == "sgd:lr=0.01,momentum=0.9,schedule=cosine" && paper.optimizer.value.weightDecay == 0)
        #expect(paper.training.budget.steps == 400_000 && paper.training.checkEvery == 10_000 && paper.protocolName == "paper")
        var short = base
        short.training.budget.steps = 2_000
        short.training.batch = 64
        short.optimizer = try Written("gd:lr=0.1")
        let scaled = try TrainingProtocol.paper.apply(to: short)
        #expect(scaled.training.checkEvery == 50, "10,000 of 400,000 steps, in proportion")
        #expect(scaled.training.batch == 64, "a batch the user set stays")
        #expect(scaled.optimizer.text == "gd:lr=0.1,schedule=cosine", "full-batch GD at the same steps, annealed")
        #expect(scaled.protocolName == "paper (budget scaled: 2000 of 400000 steps, checks every 50)")
        // An epoch budget is not the paper's: refused, not silently replaced by 400,000 steps.
        var epochs = base
        epochs.training.budget.epochs = 20
        let e = #expect(throws: EMCError.self) { _ = try TrainingProtocol.paper.apply(to: epochs) }
        #expect(e?.message.contains("give --steps") == true)
    }

    @Test("a small configuration under --protocol paper: its records carry the preset's threshold, schedule, batch, cadence and the protocol; the report names it")
    func records() throws {
        let dir = TemporaryDirectory()
        var s = try SearchSettings(data: try makeBase(dir), model: "mlp:width=8,depth=1")
        s.training.budget.steps = 400
        s.seeds = 1
        s.start = 40
        s.log = dir.file("log.jsonl")
        s = try TrainingProtocol.paper.apply(to: s)
        _ = try SearchRun(s).execute()
        let records = try ResultsLog.records(at: dir.file("log.jsonl"))
        #expect(!records.isEmpty)
        for r in records {
            #expect(r.fitThreshold == 0.995 && r.batch == 640 && r.checkEvery == 10 && r.budget == "400 steps")
            #expect(r.optimizer == "sgd:lr=0.01,momentum=0.9,schedule=cosine")
            #expect(r.protocol == "paper (budget scaled: 400 of 400000 steps, checks every 10)")
            if r.fitted { #expect(r.steps % 10 == 0 || r.steps == 400, "a 640 batch is the whole subset: one step per epoch, checked at multiples of 10") }
        }
        let report = Report.from(records + configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 300))
        #expect(report.text.contains("| protocol") && report.text.contains("paper (budget scaled"))
        #expect(report.rows.contains { $0.value(of: "protocol") == "emc" })
    }
}
