import Foundation
import Testing
import TLS

/// Makes an ECDSA P-256 certificate and key with the `openssl` command in a fresh directory.
func makeCertificate(in dir: String, name: String, names: [String]) throws -> TLSSettings.Certificate {
    let cert = "\(dir)/\(name).pem", key = "\(dir)/\(name).key"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                         "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=\(names[0])",
                         "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",")]
    process.standardError = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    return TLSSettings.Certificate(cert: cert, key: key)
}

func temporaryDirectory() -> String {
    let dir = NSTemporaryDirectory() + "switchyard-tls-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite("TLS context and selection")
struct TLSContextTests {
    @Test("SNI: exact name, then one-label wildcard, then the first certificate")
    func selection() {
        let selector = CertificateSelector(names: [["default.test"], ["shop.example", "*.shop.example"], ["*.example"], ["api.example"]])
        #expect(selector.select(nil) == 0)
        #expect(selector.select("shop.example") == 1)
        #expect(selector.select("SHOP.example") == 1)
        #expect(selector.select("a.shop.example") == 1)
        #expect(selector.select("b.a.shop.example") == 0, "a wildcard covers one label")
        #expect(selector.select("api.example") == 3, "exact beats wildcard")
        #expect(selector.select("www.example") == 2)
        #expect(selector.select("other.test") == 0)
    }

    @Test("kTLS detection reads the ULP list; the path says why")
    func kernelDetection() {
        #expect(KernelTLS.offered(byULPList: "mptcp tls\n"))
        #expect(KernelTLS.offered(byULPList: "tls"))
        #expect(!KernelTLS.offered(byULPList: "mptcp\n"))
        #expect(!KernelTLS.offered(byULPList: "tlsx espintcp"))
        #expect(!KernelTLS.offered(byULPList: ""))
        #expect(KernelTLS.path(kernelOffers: true, libraryCapable: true).path == "ktls")
        #expect(KernelTLS.path(kernelOffers: false, libraryCapable: true).path == "userspace")
        #expect(KernelTLS.path(kernelOffers: true, libraryCapable: false).path == "userspace")
        // This machine: whatever the file says, detection agrees with it.
        let text = (try? String(contentsOfFile: KernelTLS.ulpListPath, encoding: .utf8)) ?? ""
        #expect(KernelTLS.offeredByKernel() == text.split(whereSeparator: \.isWhitespace).contains("tls"))
    }

    @Test("loads certificates and describes them; errors name the field")
    func loading() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try makeCertificate(in: dir, name: "a", names: ["a.test", "*.a.test"])
        let b = try makeCertificate(in: dir, name: "b", names: ["b.test"])
        let context = try TLSContext(TLSSettings(certificates: [a, b]), kernelTLS: false)
        #expect(context.certificates.map(\.names) == [["a.test", "*.a.test"], ["b.test"]])
        #expect(context.certificates[0].subject == "CN=a.test")
        let days = (context.certificates[1].notAfter - Int64(Date().timeIntervalSince1970)) / 86400
        #expect(days == 29 || days == 30)
        #expect(context.certificateIndex(for: "b.test") == 1)

        #expect(throws: TLSError.self) { try TLSContext(TLSSettings(certificates: []), kernelTLS: false) }
        func error(_ settings: TLSSettings) -> TLSError? {
            do { _ = try TLSContext(settings, kernelTLS: false); return nil } catch { return error }
        }
        let missing = error(TLSSettings(certificates: [a, TLSSettings.Certificate(cert: dir + "/none.pem", key: b.key)]))
        #expect(missing?.field == "certificates[1].cert")
        #expect(missing?.message.contains("cannot read") == true)
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: dir + "/bad.pem"))
        #expect(error(TLSSettings(certificates: [TLSSettings.Certificate(cert: dir + "/bad.pem", key: a.key)]))?.field == "certificates[0].cert")
        let mismatch = error(TLSSettings(certificates: [TLSSettings.Certificate(cert: a.cert, key: b.key)]))
        #expect(mismatch?.field == "certificates[0].key")
        #expect(mismatch?.message.contains("does not match") == true)
        var h2 = TLSSettings(certificates: [a])
        h2.alpn = ["h2"]
        #expect(error(h2)?.field == "alpn")
        var ciphers = TLSSettings(certificates: [a])
        ciphers.ciphers = "NO-SUCH-CIPHER"
        #expect(error(ciphers)?.field == "ciphers")
    }
}
