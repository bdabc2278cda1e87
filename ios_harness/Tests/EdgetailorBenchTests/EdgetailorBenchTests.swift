// `swift test` on a Mac: the parts that need no model (the timing itself needs a .mlpackage).
import EdgetailorBench
import XCTest

final class EdgetailorBenchTests: XCTestCase {
    func testParsesDefaultsAndOptions() throws {
        let defaults = try XCTUnwrap(try BenchArguments.parse(["models", "--out", "r.json"]))
        XCTAssertEqual(defaults.configuration, BenchConfiguration(warmup: 10, runs: 50, computeUnits: ComputeUnit.allCases))
        let custom = try XCTUnwrap(try BenchArguments.parse(
            ["models", "--out=r.json", "--warmup", "0", "--runs", "5", "--compute-units", "all,cpuOnly,all"]))
        XCTAssertEqual(custom.configuration, BenchConfiguration(warmup: 0, runs: 5, computeUnits: [.all, .cpuOnly]))
        XCTAssertEqual(custom.output.lastPathComponent, "r.json")
        XCTAssertNil(try BenchArguments.parse(["--help"]))
    }

    func testRejectsBadArguments() {
        let cases: [[String]: String] = [
            ["models"]: "--out is required",
            ["--out", "r.json"]: "expected one models folder, got 0",
            ["models", "--out", "r.json", "--runs", "0"]: "--runs must be an integer >= 1 (got '0')",
            ["models", "--out", "r.json", "--compute-units", "ane"]: "unknown compute unit 'ane' (known: cpuOnly, cpuAndGPU, all)",
            ["models", "--out"]: "--out needs a value",
            ["models", "--out", "r.json", "--threads", "2"]: "unknown option --threads",
        ]
        for (arguments, message) in cases {
            XCTAssertThrowsError(try BenchArguments.parse(arguments), "\(arguments)") { error in
                XCTAssertEqual(error as? BenchError, .usage(message))
            }
        }
    }

    func testStats() {
        let stats = LatencyStats(samplesMs: [4, 1, 3, 2])
        XCTAssertEqual(stats.mean, 2.5)
        XCTAssertEqual(stats.median, 2.5)
        XCTAssertEqual(stats.min, 1)
        XCTAssertEqual(stats.max, 4)
        XCTAssertEqual(stats.std, 1.291, accuracy: 1e-3)
        XCTAssertEqual(LatencyStats(samplesMs: [7]).std, 0)
    }

    func testMissingAndEmptyFolders() throws {
        let missing = URL(fileURLWithPath: "/no/such/edgetailor/folder")
        XCTAssertThrowsError(try CoreMLBenchmark.models(in: missing)) { error in
            XCTAssertEqual(error as? BenchError, .noSuchFolder(missing.path))
        }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try CoreMLBenchmark.models(in: empty)) { error in
            XCTAssertEqual(error as? BenchError, .noModels(empty.path))
        }
    }

    func testReportAlwaysWritesTheNoteKey() throws {
        let report = BenchReport(device: DeviceInfo.current(), coremltoolsNote: nil, results: [])
        let object = try JSONSerialization.jsonObject(with: try report.jsonData())
        let json = try XCTUnwrap(object as? [String: Any])
        XCTAssertEqual(json["schema"] as? String, "edgetailor.coreml-bench/1")
        XCTAssertTrue(json["coremltools_note"] is NSNull)
    }
}
