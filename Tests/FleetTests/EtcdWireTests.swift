import Config
import Foundation
import Testing
@testable import Fleet

/// The etcd gateway's wire format: bodies built, answers read, streams split.
@Suite struct EtcdWireTests {
    func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONText.parse(bytes) as? [String: Any])
    }

    @Test func rangeOverAPrefixEndsAtTheNextKey() throws {
        let o = try object(EtcdWire.range(key: "/sy/", prefix: true))
        #expect(o["key"] as? String == Data("/sy/".utf8).base64EncodedString())
        #expect(o["range_end"] as? String == Data("/sy0".utf8).base64EncodedString())
        #expect(EtcdWire.prefixEnd("a\u{7F}") == [0x61, 0x80])
        #expect(EtcdWire.prefixEnd("") == [0])
    }

    @Test func txnCarriesCompareAndEveryOperation() throws {
        let txn = EtcdTxn(compares: [EtcdCompare(key: "/sy/state", target: .mod, equals: 42),
                                     EtcdCompare(key: "/sy/leader", target: .create, equals: 0)],
                          success: [.put(key: "/sy/state", value: Array("{}".utf8), lease: 0),
                                    .put(key: "/sy/leader", value: Array("a".utf8), lease: 77),
                                    .delete(key: "/sy/old")])
        let o = try object(EtcdWire.txn(txn))
        let compares = try #require(o["compare"] as? [[String: Any]])
        #expect(compares.count == 2)
        #expect(compares[0]["target"] as? String == "MOD")
        #expect(compares[0]["mod_revision"] as? String == "42")
        #expect(compares[0]["result"] as? String == "EQUAL")
        #expect(compares[1]["target"] as? String == "CREATE")
        #expect(compares[1]["create_revision"] as? String == "0")
        let success = try #require(o["success"] as? [[String: Any]])
        #expect(success.count == 3)
        let put = try #require(success[1]["request_put"] as? [String: Any])
        #expect(put["lease"] as? String == "77")
        #expect(put["value"] as? String == Data("a".utf8).base64EncodedString())
        #expect((success[0]["request_put"] as? [String: Any])?["lease"] == nil)
        #expect(success[2]["request_delete_range"] != nil)
    }

    @Test func rangeAnswerIsDecoded() throws {
        let body = Array(#"{"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"},"kvs":[{"key":"L2E=","create_revision":"2","mod_revision":"5","version":"1","value":"aGVsbG8=","lease":"99"}],"count":"1"}"#.utf8)
        let (revision, kvs) = try EtcdWire.decodeRange(body)
        #expect(revision == 7)
        #expect(kvs == [EtcdKeyValue(key: "/a", value: Array("hello".utf8), createRevision: 2, modRevision: 5, lease: 99)])
        let empty = try EtcdWire.decodeRange(Array(#"{"header":{"revision":"3"}}"#.utf8))
        #expect(empty.revision == 3 && empty.kvs.isEmpty)
    }

    @Test func txnAnswerSaysWhetherItsComparesHeld() throws {
        #expect(try EtcdWire.decodeTxn(Array(#"{"header":{"revision":"9"},"succeeded":true}"#.utf8)) == (true, 9))
        // The gateway leaves `succeeded` out when it is false.
        #expect(try EtcdWire.decodeTxn(Array(#"{"header":{"revision":"9"}}"#.utf8)) == (false, 9))
    }

    @Test func leaseAnswers() throws {
        #expect(try EtcdWire.decodeGrant(Array(#"{"header":{"revision":"2"},"ID":"4111120358488841224","TTL":"3"}"#.utf8)) == (4111120358488841224, 3))
        #expect(try EtcdWire.decodeKeepAlive(Array(#"{"result":{"header":{"revision":"2"},"ID":"5","TTL":"3"}}"#.utf8)) == 3)
        // An expired lease comes back without a TTL.
        #expect(try EtcdWire.decodeKeepAlive(Array(#"{"result":{"header":{"revision":"2"},"ID":"5"}}"#.utf8)) == 0)
    }

    @Test func gatewayErrorsAreThrownWithTheirMessage() {
        #expect(throws: EtcdError("etcd: etcdserver: mvcc: required revision has been compacted")) {
            try EtcdWire.decodeRange(Array(#"{"error":"etcdserver: mvcc: required revision has been compacted","code":11}"#.utf8))
        }
        #expect(throws: EtcdError.self) { try EtcdWire.decodeRange(Array("not json".utf8)) }
    }

    @Test func watchMessagesAreDecoded() throws {
        let created = try EtcdWire.decodeWatch(Array(#"{"result":{"header":{"revision":"2"},"created":true}}"#.utf8))
        #expect(created.created && created.events.isEmpty && created.revision == 2)
        let events = try EtcdWire.decodeWatch(Array(#"{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"L2E=","create_revision":"2","mod_revision":"4","version":"2","value":"aGVsbG8="}},{"type":"DELETE","kv":{"key":"L2I=","mod_revision":"4"}}]}}"#.utf8))
        #expect(events.events.count == 2)
        #expect(events.events[0] == .init(deleted: false, kv: EtcdKeyValue(key: "/a", value: Array("hello".utf8), createRevision: 2, modRevision: 4)))
        #expect(events.events[1].deleted && events.events[1].kv.key == "/b")
        let compacted = try EtcdWire.decodeWatch(Array(#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"5"}}"#.utf8))
        #expect(compacted.canceled && compacted.compactRevision == 5)
    }

    @Test func streamMessagesSplitAtNewlinesWhereverChunksEnd() throws {
        let text = Array("{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n".utf8)
        // Every split point gives the same messages.
        for split in 0...text.count {
            var s = StreamMessages()
            var out = try s.append(text[0..<split])
            out += try s.append(text[split...])
            #expect(out.map { String(decoding: $0, as: UTF8.self) } == ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
        }
        // Byte by byte too.
        var s = StreamMessages()
        var out: [[UInt8]] = []
        for b in text { out += try s.append([b]) }
        #expect(out.count == 3)
        var small = StreamMessages(maxMessageBytes: 4)
        #expect(throws: EtcdError.self) { _ = try small.append(Array("123456".utf8)) }
    }

    @Test func requestHeadIsPlainHTTP1() {
        #expect(String(decoding: EtcdWire.requestHead(path: "/v3/kv/range", host: "127.0.0.1:2379", bodyLength: 12), as: UTF8.self)
                == "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n")
    }

    @Test func endpointsAreHTTPURLs() {
        #expect(EtcdEndpoint(url: "http://127.0.0.1:2379") == EtcdEndpoint(url: "http://127.0.0.1:2379/"))
        #expect(EtcdEndpoint(url: "http://127.0.0.1:2379")?.port == 2379)
        #expect(EtcdEndpoint(url: "http://[::1]:2379")?.host == "::1")
        #expect(EtcdEndpoint(url: "https://127.0.0.1:2379") == nil)
        #expect(EtcdEndpoint(url: "http://127.0.0.1") == nil)
        #expect(EtcdEndpoint(url: "http://:2379") == nil)
    }
}
