#if canImport(Glibc)
import Glibc
#endif

// Top-level code is main-actor isolated in Swift 6; everything that starts threads
// lives in nonisolated code (Launcher), so this file only hands over.
exit(Launcher.main(Array(CommandLine.arguments.dropFirst())))
