import EMCTestSupport
import Foundation

/// The built emc binary, beside the test bundle.
let emcExecutable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("emc").path

/// Runs the built emc binary (with `environment` added to this process's); its exit status, standard output and
/// standard error.
func emc(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    try runProcess(emcExecutable, arguments, environment: environment)
}
