import Comparator
import Testing

/// Which response headers take part in a comparison, decided on the received bytes.
@Suite("Header policy")
struct HeaderPolicyTests {
    @Test("the byte check agrees with the name set, in any case, for default and configured lists")
    func bytesAgreeWithNames() {
        var custom = HeaderPolicy(ignored: ["x-build"])
        custom.ignored.insert("Date".lowercased())
        for policy in [HeaderPolicy(), custom] {
            for name in ["Date", "DATE", "date", "Server", "ETag", "Content-Type", "content-length", "X-Build", "x-buil", "x-builds", "", "Dat"] {
                let bytes = Array(name.utf8)
                let byBytes = bytes.withUnsafeBytes { policy.compares(name: $0) }
                #expect(byBytes == policy.compares(name.lowercased()), "\(name)")
            }
        }
        #expect(!custom.compares("x-build") && !custom.compares("date") && custom.compares("server"))
    }
}
