import OptimizerWire
import Testing

/// `JSONBody.check`: the strict reading of JSON request bodies before they are decoded.
struct JSONBodyTests {
    static func error(_ text: String) -> JSONBodyError? {
        error(Array(text.utf8))
    }

    static func error(_ bytes: [UInt8]) -> JSONBodyError? {
        bytes.withUnsafeBytes { raw -> JSONBodyError? in
            do throws(JSONBodyError) {
                try JSONBody.check(raw)
                return nil
            } catch {
                return error
            }
        }
    }

    @Test func acceptsValidBodies() {
        #expect(Self.error(#"{"optimizer":"adam","hyperparameters":{"lr":0.1,"betas":[0.9,0.99]},"name":null}"#) == nil)
        #expect(Self.error(#" [1, {"a": {"a": 1}}, {"a": 2}] "#) == nil)
        #expect(Self.error(#"{"groups":[{"parameters":["a"]},{"parameters":["b"]}]}"#) == nil)
        // RFC 8259 lets a parser skip a byte order mark, as JSONDecoder does.
        #expect(Self.error([0xEF, 0xBB, 0xBF] + Array(#"{"optimizer":"adam"}"#.utf8)) == nil)
    }

    @Test(arguments: [
        (#"{"optimizer":"adam","optimizer":"sgd"}"#, "optimizer"),
        (#"{"optimizer":"adam","hyperparameters":{"lr":0.1,"lr":-5}}"#, "hyperparameters.lr"),
        (#"{"hyperparameters":{"betas":[0.5,0.5]},"hyperparameters":{"betas":[2,2]}}"#, "hyperparameters"),
        (#"{"groups":[{"parameters":["a"]},{"parameters":["b"],"hyperparameters":{"lr":1,"lr":2}}]}"#, "groups[1].hyperparameters.lr"),
        (#"{"term_squared_norms":[1],"momo_totals":{"gamma":1,"gamma":2}}"#, "momo_totals.gamma"),
        (#"[[{"k":1}],[{"a":1,"k":2,"a":3}]]"#, "[1][0].a"),
        (#"{"\u00e9":1,"e\u0301":2}"#, "é"),
    ])
    func refusesADuplicateKeyAtAnyDepthNamingIt(body: String, field: String) throws {
        let error = try #require(Self.error(body))
        #expect(error.kind == .duplicateKey)
        #expect(error.field == field)
        #expect(error.description.hasPrefix("\(field): duplicate key"))
    }

    @Test func findsDuplicatesInLargeObjects() throws {
        let members = (0..<40).map { #""k\#($0)": \#($0)"# }.joined(separator: ",")
        #expect(Self.error("{\(members)}") == nil)
        let error = try #require(Self.error(#"{"outer": [{\#(members), "k7": 1}]}"#))
        #expect(error.kind == .duplicateKey && error.field == "outer[0].k7")
    }

    @Test func aHugeDuplicateKeyIsAbbreviated() throws {
        let key = String(repeating: "k", count: 500_000)
        let error = try #require(Self.error(#"{"hyperparameters":{"\#(key)":1,"\#(key)":2}}"#))
        #expect(error.kind == .duplicateKey)
        #expect(error.field == "hyperparameters." + String(repeating: "k", count: 100) + "…")
        #expect(error.description.utf8.count < 300)
    }

    @Test(arguments: [#"{"optimizer":"adam""#, #"{"optimizer":"adam",}"#, "", "[1,]", #"{"a":1} x"#, "nul"])
    func invalidJSONIsNamedAsTheBody(body: String) throws {
        let error = try #require(Self.error(body))
        #expect(error.kind == .invalid)
        #expect(error.field == "body")
        #expect(error.description.hasPrefix("body: not valid JSON: "))
    }

    @Test func boundsNesting() throws {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(Self.error(deep)?.kind == .invalid)
        let shallow = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(Self.error(shallow) == nil)
    }
}
