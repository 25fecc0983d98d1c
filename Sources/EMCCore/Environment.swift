import CEMCKernels
import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Process-wide settings read from the environment.
public enum EMCEnvironment {
    /// emc's version, printed by `emc --version` and recorded in every manifest's provenance.
    public static let version = "0.1.0"

    /// Logical CPUs this process may run on: its CPU affinity where the system says (Slurm, `taskset` and cgroups
    /// restrict it), else the CPUs online.
    public static var cpuCount: Int { Int(emc_cpu_count()) }

    /// Total physical memory in bytes (0 when unknown).
    public static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size : 0
    }

    /// Peak resident set size of this process in bytes, from getrusage (kilobytes on Linux).
    public static var peakRSS: Int {
        var usage = rusage()
        #if canImport(Glibc)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Int(usage.ru_maxrss) * 1024
    }

    /// This program's own file, links resolved (so a symlinked `emc` finds the files installed beside the real one).
    public static var executablePath: String {
        if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return link }
        return URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().path
    }

    /// The git commit of the checkout this program was built in (read from its .git folder, no git needed), or nil
    /// when it runs from elsewhere.
    public static let sourceCommit: String? = {
        var dir = FileSystem.splitDirectory(executablePath)
        for _ in 0..<8 {
            let git = FileSystem.join(dir, ".git")
            if let head = try? String(contentsOfFile: git + "/HEAD", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) {
                guard head.hasPrefix("ref: ") else { return head }
                let ref = String(head.dropFirst(5))
                if let id = try? String(contentsOfFile: git + "/" + ref, encoding: .utf8) { return id.trimmingCharacters(in: .whitespacesAndNewlines) }
                let packed = (try? String(contentsOfFile: git + "/packed-refs", encoding: .utf8)) ?? ""
                return packed.split(separator: "\n").first { $0.hasSuffix(" " + ref) }.map { String($0.prefix(40)) }
            }
            let parent = FileSystem.splitDirectory(dir)
            if parent == dir { break }
            dir = parent
        }
        return nil
    }()

    /// The CPU's model name (/proc/cpuinfo).
    public static let cpuModel: String = {
        (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    }()
}
