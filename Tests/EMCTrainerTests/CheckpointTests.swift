import EMCCore
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

@Suite("Trial checkpoints")
struct CheckpointTests {
    /// Trains `spec` with `optimizer` on fixed random data; with `checkpoint`, saving every epoch.
    /// `stopAfterEpoch`: the test seam that stops the fit as a kill would, after that epoch's checkpoint.
    static func run(_ spec: String, _ optimizer: String, data: InMemoryTrainingData, checkpoint: CheckpointOptions?, stopAfterEpoch: Int? = nil,
                    configure: (inout FitOptions) -> Void = { _ in }) throws -> (FitOutcome, [Float]) {
        var options = FitOptions()
        options.batch = 16
        options.evalBatch = 64
        options.budget.epochs = 60
        options.seed = 5
        options.checkpoint = checkpoint
        configure(&options)
        let model = try ModelSpec(parsing: spec).build(input: data.shape, classes: data.classes, maxBatch: 64)
        model.initialize(seed: 5)
        let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: optimizer), options: options)
        trainer.stopAfterEpoch = stopAfterEpoch
        let outcome = try trainer.fit()
        return (outcome, model.parameterValues)
    }

    static func same(_ a: FitOutcome, _ b: FitOutcome) -> Bool {
        var a = a, b = b
        a.seconds = 0
        b.seconds = 0
        a.resumedFromEpoch = nil
        b.resumedFromEpoch = nil
        return a == b
    }

    @Test("a trial killed midway resumes from its checkpoint and ends exactly as an uninterrupted one",
          arguments: ["sgd:lr=0.05,momentum=0.9", "adam:lr=0.01,schedule=plateau,gamma=0.5,wait=3,drops=2", "shampoo:lr=0.01,freq=3",
                      "gd:lr=0.3,momentum=0.9"])
    func resume(optimizer: String) throws {
        let dir = TemporaryDirectory()
        let data = try randomData(n: 96, d: 6, classes: 4, seed: 11)
        let (plain, plainParameters) = try Self.run("mlp:width=12,depth=2", optimizer, data: data, checkpoint: nil)
        let path = dir.file("trial.ckpt")
        let killed = CheckpointOptions(path: path, interval: 0), killedAt = min(7, max(2, plain.epochs / 2))
        #expect(throws: EMCError.self) { _ = try Self.run("mlp:width=12,depth=2", optimizer, data: data, checkpoint: killed, stopAfterEpoch: killedAt) }
        #expect(FileSystem.exists(path), "the killed trial left its checkpoint")
        let (resumed, resumedParameters) = try Self.run("mlp:width=12,depth=2", optimizer, data: data, checkpoint: CheckpointOptions(path: path, interval: 0))
        #expect(Self.same(resumed, plain), "\(optimizer): resumed \(resumed.result) after \(resumed.epochs) epochs, uninterrupted \(plain.result) after \(plain.epochs)")
        #expect(resumedParameters == plainParameters)
        #expect(resumed.resumedFromEpoch == killedAt, "the trial went on from its checkpoint, not from scratch")
        #expect(!FileSystem.exists(path), "a decided trial removes its checkpoint")
    }

    @Test("a damaged checkpoint or one of another trial is ignored: the trial starts afresh and ends the same")
    func untrusted() throws {
        let dir = TemporaryDirectory()
        let data = try randomData(n: 64, d: 5, classes: 3, seed: 2)
        let (plain, _) = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: nil)
        let path = dir.file("trial.ckpt")
        let killed = CheckpointOptions(path: path, interval: 0)
        #expect(throws: EMCError.self) { _ = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: killed, stopAfterEpoch: 3) }
        // Flip one byte inside the parameters' base64: the checksum no longer matches.
        var bytes = try ReadableFile.contents(of: path)
        let text = String(decoding: bytes, as: UTF8.self)
        let at = try #require(text.range(of: "\"parameters\":\""))
        let index = text.utf8.distance(from: text.utf8.startIndex, to: at.upperBound) + 10
        bytes[index] = bytes[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        try AtomicFileWriter.write(bytes, to: path)
        let (fresh, _) = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: CheckpointOptions(path: path, interval: 0))
        #expect(Self.same(fresh, plain) && fresh.resumedFromEpoch == nil)
        // A checkpoint whose loop state was changed (an epoch inside the budget or outside it, the loss history, the
        // elapsed time): its digest covers every field, so it is ignored, never resumed from and never a range trap.
        #expect(throws: EMCError.self) { _ = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: killed, stopAfterEpoch: 3) }
        for epoch in ["2", "999999", "-5"] {
            let text = String(decoding: try ReadableFile.contents(of: path), as: UTF8.self)
            let edited = text.replacingOccurrences(of: #""epoch":\d+"#, with: "\"epoch\":\(epoch)", options: .regularExpression)
            #expect(edited != text)
            try AtomicFileWriter.write(Array(edited.utf8), to: path)
            let (out, _) = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: CheckpointOptions(path: path, interval: 0))
            #expect(Self.same(out, plain) && out.resumedFromEpoch == nil, "epoch \(epoch)")
            #expect(throws: EMCError.self) { _ = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: killed, stopAfterEpoch: 3) }
        }
        for (field, value) in [(#""elapsed":[-0-9.e]+"#, #""elapsed":12345"#), (#""history":\[[-0-9.e]+"#, #""history":[0.5"#)] {
            let text = String(decoding: try ReadableFile.contents(of: path), as: UTF8.self)
            let edited = text.replacingOccurrences(of: field, with: value, options: .regularExpression)
            #expect(edited != text, "\(field)")
            try AtomicFileWriter.write(Array(edited.utf8), to: path)
            let (out, _) = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: CheckpointOptions(path: path, interval: 0))
            #expect(Self.same(out, plain) && out.resumedFromEpoch == nil, "\(field)")
            #expect(throws: EMCError.self) { _ = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: killed, stopAfterEpoch: 3) }
        }
        // Another trial's checkpoint (another seed): ignored, and this trial's outcome is its own.
        #expect(throws: EMCError.self) { _ = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: killed, stopAfterEpoch: 3) { $0.seed = 9 } }
        let (own, _) = try Self.run("mlp:width=8", "adam:lr=0.01", data: data, checkpoint: CheckpointOptions(path: path, interval: 0))
        #expect(Self.same(own, plain) && own.resumedFromEpoch == nil)
    }
}

@Suite("Lanczos on a broken operator")
struct LanczosMessageTests {
    @Test("a product of the wrong length and a non-finite product get messages of their own")
    func messages() throws {
        let short = #expect(throws: EMCError.self) { _ = try Lanczos.run(dimension: 4, steps: 2, seed: 1) { _ in [1, 2, 3] } }
        #expect(short?.message.contains("returned 3 values, not 4") == true, "\(String(describing: short))")
        let nan = #expect(throws: EMCError.self) { _ = try Lanczos.run(dimension: 4, steps: 2, seed: 1) { v in v.map { $0 * .nan } } }
        #expect(nan?.message.contains("not finite") == true && nan?.message.contains("values") == false, "\(String(describing: nan))")
    }
}
