import Foundation
@testable import Observability
import Testing

/// The access log line writer: times, escaping, and both formats.
@Suite("Access log lines")
struct AccessLogLineTests {
    /// A record as a reactor writes it, then the line the writer thread makes of it.
    func line(_ format: AccessLogFormat, target: [UInt8], client: String = "10.0.0.1", diverged: Bool? = nil,
              plain: AccessRecord.Plain = []) -> String {
        var record: [UInt8] = []
        func raw(_ s: String) -> [UInt8] { Array(s.utf8) }
        let (c, id, b) = (raw(client), raw("id-1"), raw("127.0.0.1:8081"))
        let requestLine = Array("GET ".utf8) + target
        c.withUnsafeBytes { c in requestLine.withUnsafeBytes { r in id.withUnsafeBytes { id in b.withUnsafeBytes { b in
            AccessRecord.append(startNanos: 1_764_534_661_123_456_789, status: 200, bytesIn: 78, bytesOut: 212, durationMicros: 412,
                                served: diverged == nil ? 0 : 1, client: c, requestLine: r, requestID: id, backend: b,
                                cluster: AccessClusterText(uuid: "c1", version: "2.0", mode: "INSTANT"), plain: plain, to: &record)
        } } } }
        if let diverged { record[AccessRecord.divergedOffset] = diverged ? 2 : 1 }
        var writer = AccessLogLine(format: format)
        var out: [UInt8] = []
        var count = 0
        record.withUnsafeBytes { bytes in
            AccessRecord.forEach(in: bytes) { r in
                writer.record(r, to: &out)
                writer.end(diverged: r.diverged, to: &out)
                count += 1
            }
        }
        #expect(count == 1)
        return String(decoding: out, as: UTF8.self)
    }

    @Test("logfmt: bare values, quoted and escaped ones when needed")
    func logfmt() {
        #expect(line(.logfmt, target: Array("/cart?id=1".utf8)) == "time=2025-11-30T20:31:01.123Z client=10.0.0.1 method=GET target=\"/cart?id=1\" status=200 "
                + "bytes_in=78 bytes_out=212 duration_us=412 request_id=id-1 cluster=c1 version=2.0 backend=127.0.0.1:8081 mode=INSTANT\n")
        let odd = line(.logfmt, target: Array("/a\"b\\c".utf8) + [0xC3, 0xA9])
        #expect(odd.contains(#"target="/a\"b\\c\xc3\xa9""#), "\(odd)")
        #expect(line(.logfmt, target: Array("/".utf8), diverged: true).hasSuffix(" mode=INSTANT served=new diverged=true\n"))
    }

    @Test("json: every line parses, whatever bytes the target held")
    func json() throws {
        let text = line(.json, target: Array("/x\"y\\z".utf8) + [0x01, 0xFF], diverged: false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["target"] as? String == "/x\"y\\z\u{01}\u{FF}")
        #expect(object["status"] as? Int == 200 && object["diverged"] as? Bool == false && object["served"] as? String == "new")
        #expect(object["time"] as? String == "2025-11-30T20:31:01.123Z")
        #expect(text.hasSuffix("}\n"))
    }

    @Test("the worst case for escaping: every byte of a long target needs six")
    func worstCaseEscaping() throws {
        let target = [UInt8](repeating: 0x01, count: 8192)
        let text = line(.json, target: target)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect((object["target"] as? String)?.count == 8192)
        #expect(line(.logfmt, target: target).contains(String(repeating: "\\x01", count: 8192)))
    }

    @Test("times agree with Foundation's formatter across years, leap days and month ends")
    func times() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var seconds: Int64 = 0
        while seconds < 4_200_000_000 {   // 1970 to 2103, in steps that hit every day of the month over time
            var out: [UInt8] = []
            AccessLogLine.appendTime(seconds * 1_000_000_000 + 7_000_000, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == formatter.string(from: Date(timeIntervalSince1970: Double(seconds) + 0.007)))
            seconds += 86_400 * 37 + 3_671
        }
    }

    @Test("the eight-bytes-a-step scan finds the first byte to escape, for every byte value at every position")
    func scanAgreesWithBytewise() {
        func special(_ b: UInt8, bare: Bool) -> Bool {
            b < 0x20 || b >= 0x7F || b == 0x22 || b == 0x5C || (bare && (b == 0x20 || b == 0x3D))
        }
        for bare in [false, true] {
            for b in 0...255 {
                for length in [1, 7, 8, 9, 17, 24] {
                    for at in 0..<length {
                        var bytes = [UInt8](repeating: 0x61, count: length)
                        bytes[at] = UInt8(b)
                        if at + 1 < length { bytes[at + 1] = 0x3D }   // a later special byte must not be found first
                        let expected = special(UInt8(b), bare: bare) ? at : (bare && at + 1 < length ? at + 1 : length)
                        let found = bytes.withUnsafeBytes { AccessLogLine.firstSpecial($0, alsoBare: bare) }
                        #expect(found == expected, "byte \(b) at \(at) of \(length), bare: \(bare)")
                    }
                }
            }
        }
    }

    @Test("fields the reactor marks plain are copied as they are: the same lines in both formats")
    func plainFields() {
        for format in AccessLogFormat.allCases {
            let target = Array("/a b".utf8)
            #expect(line(format, target: target, plain: [.client, .backend, .requestID]) == line(format, target: target))
        }
        #expect(!AccessClusterText(uuid: "a b", version: "1", mode: "INSTANT").isPlain)
        #expect(AccessClusterText(uuid: "c1", version: "2.0", mode: "INSTANT").isPlain)
    }
}
