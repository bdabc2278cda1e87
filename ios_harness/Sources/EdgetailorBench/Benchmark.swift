import CoreML
import Foundation

/// Times Core ML models: compile each once, load it once per compute unit, run `warmup`
/// untimed predictions, then `runs` timed ones on a zero-filled input.
public struct CoreMLBenchmark {
    public static let modelExtensions: Set<String> = ["mlpackage", "mlmodel", "mlmodelc"]

    public var configuration: BenchConfiguration
    /// Called with one line per model and compute unit; the library itself prints nothing.
    public var progress: (String) -> Void

    public init(configuration: BenchConfiguration = BenchConfiguration(),
                progress: @escaping (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.progress = progress
    }

    /// The models in `folder`, sorted by file name. `.mlmodelc` is accepted because Xcode
    /// compiles a model it copies into an app or test bundle.
    public static func models(in folder: URL) throws -> [URL] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw BenchError.noSuchFolder(folder.path)
        }
        let models = try FileManager.default
            .contentsOfDirectory(at: folder, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
            .filter { modelExtensions.contains($0.pathExtension.lowercased()) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        guard !models.isEmpty else { throw BenchError.noModels(folder.path) }
        return models
    }

    /// Times every model in `folder`. Throws only for the folder; a model that fails to
    /// compile, load or predict is recorded in the report with its error.
    public func run(modelsIn folder: URL) throws -> BenchReport {
        run(models: try Self.models(in: folder))
    }

    public func run(models: [URL]) -> BenchReport {
        var results: [BenchResult] = []
        var versions = Set<String>()
        for url in models {
            let name = url.lastPathComponent
            let compiled: URL
            do {
                compiled = try compile(url)
            } catch {
                let message = "compile failed: \(describe(error))"
                progress("\(name): \(message)")
                results += configuration.computeUnits.map { failure(name, $0, message, loadMs: nil) }
                continue
            }
            defer {
                if compiled != url { try? FileManager.default.removeItem(at: compiled) }
            }
            for unit in configuration.computeUnits {
                let (result, version) = autoreleasepool { measure(compiled, name: name, unit: unit) }
                results.append(result)
                if let version = version { versions.insert(version) }
            }
        }
        let note = versions.isEmpty ? nil
            : "coremltools \(versions.sorted().joined(separator: ", ")) (from the models' metadata)"
        return BenchReport(device: .current(), coremltoolsNote: note, results: results)
    }

    private func compile(_ url: URL) throws -> URL {
        if url.pathExtension.lowercased() == "mlmodelc" { return url }
        return try MLModel.compileModel(at: url)
    }

    /// One model on one compute unit, and the coremltools version its metadata names.
    private func measure(_ compiled: URL, name: String, unit: ComputeUnit) -> (BenchResult, String?) {
        var stage = "load"
        var loadMs: Double?
        do {
            let modelConfiguration = MLModelConfiguration()
            modelConfiguration.computeUnits = unit.mlComputeUnits
            let start = DispatchTime.now().uptimeNanoseconds
            let model = try MLModel(contentsOf: compiled, configuration: modelConfiguration)
            loadMs = LatencyStats.rounded(milliseconds(since: start))
            stage = "input"
            let input = try ZeroInputs.features(for: model.modelDescription)
            stage = "prediction"
            let samples = try time(model, input)
            let stats = LatencyStats(samplesMs: samples)
            progress("\(name) \(unit.rawValue): mean \(stats.mean) ms, median \(stats.median) ms, "
                     + "load \(loadMs ?? 0) ms")
            let result = BenchResult(model: name, computeUnits: unit, warmup: configuration.warmup,
                                     runs: configuration.runs, latencyMs: stats, loadMs: loadMs, error: nil)
            return (result, coremltoolsVersion(model))
        } catch {
            let message = "\(stage) failed: \(describe(error))"
            progress("\(name) \(unit.rawValue): \(message)")
            return (failure(name, unit, message, loadMs: loadMs), nil)
        }
    }

    /// Milliseconds of each timed prediction, on the monotonic clock.
    private func time(_ model: MLModel, _ input: MLFeatureProvider) throws -> [Double] {
        for _ in 0..<configuration.warmup {
            try autoreleasepool { _ = try model.prediction(from: input) }
        }
        var samples: [Double] = []
        samples.reserveCapacity(configuration.runs)
        for _ in 0..<configuration.runs {
            // The clock stops inside the pool, so draining the outputs is not timed.
            try autoreleasepool {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try model.prediction(from: input)
                samples.append(milliseconds(since: start))
            }
        }
        return samples
    }

    private func failure(_ name: String, _ unit: ComputeUnit, _ message: String, loadMs: Double?) -> BenchResult {
        BenchResult(model: name, computeUnits: unit, warmup: configuration.warmup, runs: configuration.runs,
                    latencyMs: nil, loadMs: loadMs, error: message)
    }

    private func coremltoolsVersion(_ model: MLModel) -> String? {
        let userDefined = model.modelDescription.metadata[.creatorDefinedKey] as? [String: String]
        return userDefined?["com.github.apple.coremltools.version"]
    }
}

private func milliseconds(since start: UInt64) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
}

private func describe(_ error: Error) -> String {
    if let benchError = error as? BenchError { return benchError.localizedDescription }
    let nsError = error as NSError
    var text = nsError.localizedDescription
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError {
        text += " (\(underlying.localizedDescription))"
    }
    return text
}
