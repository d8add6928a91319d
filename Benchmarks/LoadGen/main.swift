import BenchCore
#if canImport(Glibc)
import Glibc
#endif

// Top-level code is main-actor isolated in Swift 6; the tool's logic lives in nonisolated
// code (BenchCommand), so this file only hands over.
exit(BenchCommand.main(Array(CommandLine.arguments.dropFirst())))
