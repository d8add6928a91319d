import Foundation
import Testing
@testable import Config

struct JSONErrorCase: CustomTestStringConvertible, Sendable {
    var text: String
    var error: String
    var testDescription: String { text.debugDescription }
}

let jsonErrorCases: [JSONErrorCase] = [
    JSONErrorCase(text: "{} x", error: "json: unexpected 'x' after the JSON value at line 1, column 4 (byte 3)"),
    JSONErrorCase(text: "01", error: "json: leading zero in number at line 1, column 1 (byte 0)"),
    JSONErrorCase(text: "1.", error: "json: expected digits after '.' at line 1, column 1 (byte 0)"),
    JSONErrorCase(text: "-", error: "json: invalid number at line 1, column 1 (byte 0)"),
    JSONErrorCase(text: "1e999", error: "json: number out of range at line 1, column 1 (byte 0)"),
    JSONErrorCase(text: "tru", error: "json: invalid literal (expected true) at line 1, column 1 (byte 0)"),
    JSONErrorCase(text: "\"abc", error: "json: unterminated string at line 1, column 1 (byte 0)"),
    JSONErrorCase(text: "\"a\nb\"", error: "json: control character in string (escape it) at line 1, column 3 (byte 2)"),
    JSONErrorCase(text: #""\x""#, error: #"json: invalid escape '\x' at line 1, column 2 (byte 1)"#),
    JSONErrorCase(text: #""\ud800""#, error: "json: unpaired surrogate in \\u escape at line 1, column 8 (byte 7)"),
    JSONErrorCase(text: #""\u12""#, error: "json: truncated \\u escape at line 1, column 4 (byte 3)"),
    JSONErrorCase(text: #""\u12zz""#, error: "json: invalid hex digit in \\u escape at line 1, column 6 (byte 5)"),
    JSONErrorCase(text: "[1 2]", error: "json: expected ',' or ']', found '2' at line 1, column 4 (byte 3)"),
    JSONErrorCase(text: "{\"a\" 1}", error: "json: expected ':' after key \"a\", found '1' at line 1, column 6 (byte 5)"),
    JSONErrorCase(text: String(repeating: "[", count: 65) + String(repeating: "]", count: 65),
                  error: "json: nesting deeper than 64 at line 1, column 65 (byte 64)"),
    JSONErrorCase(text: "'a'", error: "json: unexpected ''' at line 1, column 1 (byte 0)"),
]

@Test(arguments: jsonErrorCases)
func jsonErrors(_ c: JSONErrorCase) {
    do {
        _ = try JSONText.parse(Array(c.text.utf8))
        Issue.record("parsed")
    } catch {
        #expect(error.description == c.error)
    }
}

@Test func jsonInvalidUTF8() {
    #expect(throws: ConfigError(field: "json", message: "string is not valid UTF-8 at line 1, column 1 (byte 0)")) {
        try JSONText.parse([0x22, 0xFF, 0x22])
    }
}

@Test func jsonValues() throws {
    let v = try JSONText.parse(Array(#" {"i": -12, "d": 1.5e2, "b": [true, false, null], "s": "a\"\\\/\n\u00e9\ud83d\ude00"} "#.utf8))
    let o = try #require(v as? [String: Any])
    #expect(o["i"] as? Int == -12)
    #expect(o["d"] as? Double == 150)
    let b = try #require(o["b"] as? [Any])
    #expect(b[0] as? Bool == true)
    #expect(b[1] as? Bool == false)
    #expect(b[2] is NSNull)
    #expect(o["s"] as? String == "a\"\\/\né😀")
    // 64-bit overflow falls back to Double.
    #expect(try JSONText.parse(Array("18446744073709551616".utf8)) as? Double == 18446744073709551616.0)
}

@Test func jsonWriter() throws {
    let value: [String: Any] = [
        "z": 1, "a": [true, NSNull(), 2.5, 3.0, "x\"y\\\n\u{01}é"], "m": ["b": 1, "a": 2] as [String: Any],
        "n": Optional<Int>.none as Any, "u": UInt8(7),
    ]
    let text = String(decoding: JSONText.encode(value), as: UTF8.self)
    #expect(text == #"{"a":[true,null,2.5,3,"x\"y\\\n\u0001é"],"m":{"a":2,"b":1},"n":null,"u":7,"z":1}"#)
    // What the writer writes, the reader reads back.
    let again = try #require(try JSONText.parse(JSONText.encode(value)) as? [String: Any])
    #expect(String(decoding: JSONText.encode(again), as: UTF8.self) == text)
}
