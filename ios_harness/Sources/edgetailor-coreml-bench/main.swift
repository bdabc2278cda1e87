// edgetailor-coreml-bench <models-dir> --out results.json [--warmup 10] [--runs 50]
//                         [--compute-units cpuOnly,cpuAndGPU,all]
// Exit status: 0 all models timed, 1 some failed (recorded in the JSON), 2 nothing written.
import EdgetailorBench
import Foundation

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func runCommand() -> Int32 {
    let arguments: BenchArguments
    do {
        guard let parsed = try BenchArguments.parse(Array(CommandLine.arguments.dropFirst())) else {
            print(BenchArguments.usage)
            return 0
        }
        arguments = parsed
    } catch {
        printError("error: \(error.localizedDescription)\n\n\(BenchArguments.usage)")
        return 2
    }
    let benchmark = CoreMLBenchmark(configuration: arguments.configuration, progress: printError)
    do {
        let report = try benchmark.run(modelsIn: arguments.modelsDirectory)
        try report.write(to: arguments.output)
        let failed = report.failures.count
        printError("wrote \(report.results.count) results to \(arguments.output.path)"
                   + (failed > 0 ? " (\(failed) failed)" : ""))
        return failed > 0 ? 1 : 0
    } catch {
        printError("error: \(error.localizedDescription)")
        return 2
    }
}

exit(runCommand())
