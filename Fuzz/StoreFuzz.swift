// libFuzzer entry point for the state store's decoder: the journal/snapshot framing
// (Sources/Store/Frames.swift, CRC32C.swift) and the JSON reader its payloads go through
// (Sources/Config/JSONText.swift). Built together with those files by Fuzz/run-store.sh.
//
// Each input is scanned as a journal file twice: as given, and behind a valid header (so the
// fuzzer need not find the header). The scan must throw or return records that lie inside
// the input, in order, each with a matching checksum; a torn tail must start at or after the
// last record's end. Every record payload is then parsed as JSON, which may only throw.

let header = Array("SWYJRNL1".utf8)

func check(_ bytes: [UInt8]) {
    guard let scan = try? Frames.scan(bytes, header: header) else { return }
    var end = Frames.headerLength
    for record in scan.records {
        precondition(record.offset >= Frames.headerLength && record.offset >= end)
        precondition(record.payload.startIndex == record.offset + Frames.recordHeaderLength)
        precondition(record.payload.endIndex <= bytes.count)
        precondition(CRC32C.checksum(record.payload) == Frames.readLE(bytes, at: record.offset + 8))
        end = record.payload.endIndex
        _ = try? JSONText.parse(Array(record.payload), keepingNumberText: true)
    }
    precondition(scan.validLength <= bytes.count)
    // A torn tail starts exactly where the intact records end (the file is cut there).
    if let torn = scan.tornTail { precondition(torn.offset == scan.validLength) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    check(bytes)
    check(header + bytes)
    // Inputs that are themselves a payload: framed correctly, so the JSON reader sees them.
    check(header + Frames.frame(bytes.isEmpty ? [0x7B] : bytes))
    return 0
}
