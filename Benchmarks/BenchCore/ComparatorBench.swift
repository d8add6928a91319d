import Comparator
import Foundation
import Syscalls

/// `switchyard-bench comparator`: the CONCURRENT body comparator alone, in MiB/s of body per
/// side, for the ways the proxy feeds it. No sockets: it measures the comparator's own cost.
///
/// Cases:
/// - `lock-step`: both sides fed alternately in `--chunk` pieces (what the proxy does when the
///   drained version keeps pace): every byte compared against the other side's;
/// - `lead`: one side fed completely before the other (the drained version far behind): lock-step
///   is given up after the window and the rest is only digested;
/// - `differ`: like lock-step, with a byte changed near the end.
enum ComparatorBench {
    struct Options {
        var size = 1 << 20
        var chunk = 16384
        var window = 32768
        var seconds = 1.0
    }

    static let usage = """
    Usage: switchyard-bench comparator [--size BYTES] [--chunk BYTES] [--window BYTES] [--seconds S]
      Measures the CONCURRENT body comparator alone (no sockets), MiB/s of body per side:
      lock-step (both sides alternate in --chunk pieces), lead (one side runs past the
      window), differ (a byte changed near the end). Defaults: 1 MiB bodies, 16 KiB pieces,
      32 KiB window (the proxy's), 1 s per case.
    """

    static func main(_ arguments: [String]) -> Int32 {
        var o = Options()
        do {
            let (flags, positionals) = try ArgumentReader.read(arguments) { name in
                ["--size", "--chunk", "--window", "--seconds"].contains(name) ? true : (["-h", "--help"].contains(name) ? false : nil)
            }
            guard positionals.isEmpty else { throw BenchUsageError("unexpected argument \(positionals[0])") }
            for (name, value) in flags {
                let v = value ?? ""
                switch name {
                case "--size":
                    guard let n = WrkUnits.scanMetric(v), n >= 1, n <= 1 << 30 else { throw BenchUsageError("invalid size \(v)") }
                    o.size = Int(n)
                case "--chunk":
                    guard let n = WrkUnits.scanMetric(v), n >= 1 else { throw BenchUsageError("invalid chunk \(v)") }
                    o.chunk = Int(n)
                case "--window":
                    guard let n = WrkUnits.scanMetric(v), n >= 1 else { throw BenchUsageError("invalid window \(v)") }
                    o.window = Int(n)
                case "--seconds":
                    guard let s = Double(v), s > 0, s <= 60 else { throw BenchUsageError("invalid seconds \(v)") }
                    o.seconds = s
                default:
                    printOut(usage + "\n")
                    return 0
                }
            }
        } catch {
            printError("switchyard-bench comparator: \(error)")
            printError(usage)
            return 1
        }
        // Each side's body in its own memory, as two responses are.
        let body = (0..<o.size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let same = (0..<o.size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        var changed = same
        changed[max(0, o.size - 100)] ^= 0x5A
        printOut("comparator: \(o.size)-byte bodies, \(o.chunk)-byte pieces, \(o.window)-byte window\n")
        for (name, b, alternate) in [("lock-step", same, true), ("lead", same, false), ("differ", changed, true)] {
            let rate = measure(seconds: o.seconds) { () -> Bool in
                let c = feed(body, b, chunk: o.chunk, window: o.window, alternate: alternate)
                return c.bodiesEqual
            }
            printOut(name.padding(toLength: 10, withPad: " ", startingAt: 0)
                     + String(format: "%10.0f MiB/s per side  (%.1f µs per body)\n", rate * Double(o.size) / 1_048_576, 1e6 / rate))
        }
        return 0
    }

    /// Runs `body` repeatedly for about `seconds`; returns runs per second.
    static func measure(seconds: Double, _ body: () -> Bool) -> Double {
        var sink = false
        for _ in 0..<3 { sink = body() != sink }   // warm caches and the allocator
        var runs = 0
        let start = Clock.nanoseconds()
        let end = start + UInt64(seconds * 1e9)
        var now = start
        while now < end {
            sink = body() != sink
            runs += 1
            now = Clock.nanoseconds()
        }
        if sink && runs < 0 { printOut("") }   // keep the result alive
        return Double(runs) / (Double(now - start) / 1e9)
    }

    /// Feeds both bodies as the proxy would and ends both sides.
    static func feed(_ a: [UInt8], _ b: [UInt8], chunk: Int, window: Int, alternate: Bool) -> StreamComparator {
        var c = StreamComparator(window: window)
        a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                if alternate {
                    var i = 0
                    while i < pa.count || i < pb.count {
                        if i < pa.count { c.feed(side: 1, UnsafeRawBufferPointer(rebasing: pa[i..<min(i + chunk, pa.count)])) }
                        if i < pb.count { c.feed(side: 0, UnsafeRawBufferPointer(rebasing: pb[i..<min(i + chunk, pb.count)])) }
                        i += chunk
                    }
                } else {
                    var i = 0
                    while i < pa.count { c.feed(side: 1, UnsafeRawBufferPointer(rebasing: pa[i..<min(i + chunk, pa.count)])); i += chunk }
                    i = 0
                    while i < pb.count { c.feed(side: 0, UnsafeRawBufferPointer(rebasing: pb[i..<min(i + chunk, pb.count)])); i += chunk }
                }
            }
        }
        c.end(side: 1)
        c.end(side: 0)
        return c
    }
}
