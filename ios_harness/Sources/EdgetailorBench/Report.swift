import Foundation

/// Summary of timed predictions, in milliseconds; `std` is the sample standard deviation.
public struct LatencyStats: Encodable, Equatable {
    public let mean: Double
    public let median: Double
    public let min: Double
    public let max: Double
    public let std: Double

    /// Precondition: at least one sample.
    public init(samplesMs samples: [Double]) {
        precondition(!samples.isEmpty, "LatencyStats needs at least one sample")
        let sorted = samples.sorted()
        let n = sorted.count
        let lowest = sorted[0]
        let highest = sorted[n - 1]
        // Clamped because a floating-point sum can land an ulp outside [min, max].
        let mean = Swift.min(Swift.max(sorted.reduce(0, +) / Double(n), lowest), highest)
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        let squares = sorted.map { ($0 - mean) * ($0 - mean) }.reduce(0, +)
        let variance = n > 1 ? squares / Double(n - 1) : 0
        self.mean = Self.rounded(mean)
        self.median = Self.rounded(median)
        self.min = Self.rounded(lowest)
        self.max = Self.rounded(highest)
        self.std = Self.rounded(variance.squareRoot())
    }

    /// Rounds to 0.1 µs: far below run-to-run jitter, and keeps the JSON readable.
    static func rounded(_ ms: Double) -> Double { (ms * 10_000).rounded() / 10_000 }
}

/// One model on one compute unit: timings, or the error that stopped it.
public struct BenchResult: Encodable {
    public let model: String
    public let computeUnits: ComputeUnit
    public let warmup: Int
    public let runs: Int
    public let latencyMs: LatencyStats?
    public let loadMs: Double?
    public let error: String?

    public init(model: String, computeUnits: ComputeUnit, warmup: Int, runs: Int,
                latencyMs: LatencyStats?, loadMs: Double?, error: String?) {
        self.model = model
        self.computeUnits = computeUnits
        self.warmup = warmup
        self.runs = runs
        self.latencyMs = latencyMs
        self.loadMs = loadMs
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case model
        case computeUnits = "compute_units"
        case warmup
        case runs
        case latencyMs = "latency_ms"
        case loadMs = "load_ms"
        case error
    }
}

/// The device the harness ran on: hardware id (`iPhone10,3`, or `Mac14,2` on a Mac) and OS.
public struct DeviceInfo: Encodable {
    public let model: String
    public let os: String

    public init(model: String, os: String) {
        self.model = model
        self.os = os
    }

    public static func current() -> DeviceInfo {
        #if os(macOS)
        let key = "hw.model"  // hw.machine is only the CPU architecture on a Mac
        #else
        let key = "hw.machine"  // on a simulator this is the host's architecture, not a phone
        #endif
        return DeviceInfo(model: sysctlString(key) ?? "unknown",
                          os: ProcessInfo.processInfo.operatingSystemVersionString)
    }

    private static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        return String(cString: buffer)
    }
}

/// The whole JSON file (schema `edgetailor.coreml-bench/1`).
public struct BenchReport: Encodable {
    public static let schema = "edgetailor.coreml-bench/1"

    public let device: DeviceInfo
    /// Which coremltools converted the models, read from their metadata; nil when none says.
    public let coremltoolsNote: String?
    public let results: [BenchResult]

    public init(device: DeviceInfo, coremltoolsNote: String?, results: [BenchResult]) {
        self.device = device
        self.coremltoolsNote = coremltoolsNote
        self.results = results
    }

    public var failures: [BenchResult] { results.filter { $0.error != nil } }

    enum CodingKeys: String, CodingKey {
        case schema
        case device
        case coremltoolsNote = "coremltools_note"
        case results
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.schema, forKey: .schema)
        try container.encode(device, forKey: .device)
        // Written as null rather than left out, so the key is always there.
        if let note = coremltoolsNote {
            try container.encode(note, forKey: .coremltoolsNote)
        } else {
            try container.encodeNil(forKey: .coremltoolsNote)
        }
        try container.encode(results, forKey: .results)
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Writes the JSON atomically (a temporary file renamed into place).
    public func write(to url: URL) throws {
        try jsonData().write(to: url, options: .atomic)
    }
}
