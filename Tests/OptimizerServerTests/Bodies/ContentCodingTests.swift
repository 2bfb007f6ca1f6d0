import HTTPTypes
import Testing

@testable import OptimizerServer

struct ContentCodingTests {
    static let requestCases: [(String?, ContentCoding)] = [
        (nil, .identity), ("identity", .identity), ("gzip", .gzip), ("x-gzip", .gzip), ("GZIP", .gzip),
        ("deflate", .deflate), ("identity, gzip", .gzip),
    ]

    static let responseCases: [(String?, ContentCoding)] = [
        (nil, .identity), ("gzip", .gzip), ("deflate", .deflate), ("br, deflate;q=0.5", .deflate),
        ("gzip;q=0, deflate", .deflate), ("*", .gzip), ("identity", .identity), ("gzip;q=0", .identity),
    ]

    @Test(arguments: requestCases)
    func requestCodings(header: String?, coding: ContentCoding) throws {
        #expect(try ContentCoding(contentEncoding: header) == coding)
    }

    @Test(arguments: ["br", "zstd", "gzip, deflate", "compress"])
    func unknownRequestCodingsAre415(header: String) {
        let error = #expect(throws: ProblemError.self) { try ContentCoding(contentEncoding: header) }
        #expect(error?.status == .unsupportedMediaType)
    }

    @Test(arguments: responseCases)
    func responseNegotiation(header: String?, coding: ContentCoding) {
        #expect(ContentCoding(acceptEncoding: header) == coding)
    }
}
