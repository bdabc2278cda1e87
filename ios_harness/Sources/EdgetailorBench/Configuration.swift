import CoreML
import Foundation

/// The Core ML compute units the harness times, named as in `MLComputeUnits` and in the JSON.
public enum ComputeUnit: String, CaseIterable, Encodable {
    case cpuOnly
    case cpuAndGPU
    case all

    public var mlComputeUnits: MLComputeUnits {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .all: return .all
        }
    }
}

/// How many predictions to run, and on which compute units.
public struct BenchConfiguration: Equatable {
    public var warmup: Int
    public var runs: Int
    public var computeUnits: [ComputeUnit]

    public init(warmup: Int = 10, runs: Int = 50, computeUnits: [ComputeUnit] = ComputeUnit.allCases) {
        self.warmup = warmup
        self.runs = runs
        self.computeUnits = computeUnits
    }
}

public enum BenchError: Error, LocalizedError, Equatable {
    case usage(String)
    case noSuchFolder(String)
    case noModels(String)
    case unsupportedInput(name: String, reason: String)
    case inputAllocation(name: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .usage(let message): return message
        case .noSuchFolder(let path): return "models folder does not exist or is not a folder: \(path)"
        case .noModels(let path): return "no .mlpackage, .mlmodel or .mlmodelc in \(path)"
        case .unsupportedInput(let name, let reason): return "input '\(name)': \(reason)"
        case .inputAllocation(let name, let reason): return "input '\(name)': \(reason)"
        }
    }
}

/// The parsed command line of `edgetailor-coreml-bench`.
public struct BenchArguments: Equatable {
    public static let usage = """
        usage: edgetailor-coreml-bench <models-dir> --out results.json \
        [--warmup 10] [--runs 50] [--compute-units cpuOnly,cpuAndGPU,all]

        Compiles every .mlpackage/.mlmodel in <models-dir>, loads it once per compute unit,
        runs the warm-up predictions, times the others and writes one JSON file.
        """

    public var modelsDirectory: URL
    public var output: URL
    public var configuration: BenchConfiguration

    /// Parses the arguments after the program name; `nil` means `--help` was asked for.
    public static func parse(_ arguments: [String]) throws -> BenchArguments? {
        var positional: [String] = []
        var output: String?
        var configuration = BenchConfiguration()
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            var flag = argument
            var inlineValue: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                flag = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            func value() throws -> String {
                if let inlineValue = inlineValue { return inlineValue }
                guard let next = rest.popFirst() else { throw BenchError.usage("\(flag) needs a value") }
                return next
            }
            switch flag {
            case "-h", "--help":
                return nil
            case "--out":
                output = try value()
            case "--warmup":
                configuration.warmup = try integer(flag, try value(), minimum: 0)
            case "--runs":
                configuration.runs = try integer(flag, try value(), minimum: 1)
            case "--compute-units":
                configuration.computeUnits = try computeUnits(try value())
            default:
                if flag.hasPrefix("-") { throw BenchError.usage("unknown option \(flag)") }
                positional.append(argument)
            }
        }
        guard positional.count == 1 else {
            throw BenchError.usage("expected one models folder, got \(positional.count)")
        }
        guard let output = output, !output.isEmpty else { throw BenchError.usage("--out is required") }
        return BenchArguments(
            modelsDirectory: URL(fileURLWithPath: positional[0]),
            output: URL(fileURLWithPath: output),
            configuration: configuration)
    }

    private static func integer(_ flag: String, _ text: String, minimum: Int) throws -> Int {
        guard let number = Int(text), number >= minimum else {
            throw BenchError.usage("\(flag) must be an integer >= \(minimum) (got '\(text)')")
        }
        return number
    }

    private static func computeUnits(_ text: String) throws -> [ComputeUnit] {
        var units: [ComputeUnit] = []
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let unit = ComputeUnit(rawValue: name) else {
                let known = ComputeUnit.allCases.map(\.rawValue).joined(separator: ", ")
                throw BenchError.usage("unknown compute unit '\(name)' (known: \(known))")
            }
            if !units.contains(unit) { units.append(unit) }
        }
        guard !units.isEmpty else { throw BenchError.usage("--compute-units is empty") }
        return units
    }
}
