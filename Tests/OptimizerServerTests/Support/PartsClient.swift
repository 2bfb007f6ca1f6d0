import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// A step sent in parts, as a client coordinates it: each part PUT, the answers' per-tensor sums of
/// squares folded in the contract's order (terms first, then the session's parameter order; each
/// tensor adds `s · u · u` with `u = 1 / grad_scale`), then the commit with those scalars.
struct PartsClient {
    /// The session's parameter names in upload order.
    var parameterOrder: [String]
    /// The session's loss terms.
    var terms = 1

    /// The (term, parameter index) a gradient name stands for: `k/P` when there are several terms
    /// or the name has that form, otherwise `P` of term 0.
    func position(of name: String) -> (term: Int, index: Int)? {
        if let slash = name.firstIndex(of: "/"), let term = Int(name[..<slash]),
            let index = parameterOrder.firstIndex(of: String(name[name.index(after: slash)...]))
        {
            return (term, index)
        }
        return parameterOrder.firstIndex(of: name).map { (0, $0) }
    }

    /// The commit body for these part answers (`tensors` of every part merged).
    func commitBody(sums: [String: (sum: Double?, finite: Bool)], loss: Double?, gradScale: Double?) throws -> ByteBuffer {
        let unscale = gradScale.map { 1 / $0 } ?? 1
        let ordered = sums.keys.compactMap { name in position(of: name).map { (name, $0) } }
            .sorted { ($0.1.term, $0.1.index) < ($1.1.term, $1.1.index) }
        var norms = [Double](repeating: 0, count: terms)
        var nonfinite: String?
        for (name, place) in ordered {
            let entry = sums[name]!
            if !entry.finite, nonfinite == nil { nonfinite = name }
            norms[place.term] += (entry.sum ?? 0) * unscale * unscale
        }
        // JSONEncoder writes the shortest digits that read back as the same double (JSONSerialization
        // does not, on Linux), as Python's json does.
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return ByteBuffer(
            bytes: try encoder.encode(CommitJSON(termSquaredNorms: norms, nonfinite: nonfinite, loss: loss, gradScale: gradScale)))
    }

    /// PUTs one part and returns its answer's tensors.
    static func putPart(
        _ client: some TestClientProtocol, _ session: CreatedSession, step: Int, part: String, body: ByteBuffer
    ) async throws -> [String: (sum: Double?, finite: Bool)] {
        let response = try await client.execute(
            uri: "\(session.path)/steps/\(step)/parts/\(part)", method: .put, headers: session.auth, body: body)
        try #require(response.status == .ok, "part \(part) of step \(step): \(String(buffer: response.body))")
        let answer = try JSONDecoder().decode(AnswerJSON.self, from: Data(response.body.readableBytesView))
        return answer.tensors.mapValues { ($0.sum_of_squares, $0.finite) }
    }

    /// POSTs the commit of `step`.
    static func commit(
        _ client: some TestClientProtocol, _ session: CreatedSession, step: Int, body: ByteBuffer, query: String = ""
    ) async throws -> TestResponse {
        try await client.execute(
            uri: "\(session.path)/steps/\(step)/commit\(query)", method: .post,
            headers: session.auth.merging([.contentType: "application/json"]), body: body)
    }

    private struct CommitJSON: Encodable {
        var termSquaredNorms: [Double]
        var nonfinite: String?
        var loss: Double?
        var gradScale: Double?

        enum CodingKeys: String, CodingKey {
            case nonfinite, loss
            case termSquaredNorms = "term_squared_norms"
            case gradScale = "grad_scale"
        }
    }

    private struct AnswerJSON: Decodable {
        struct Statistics: Decodable {
            var sum_of_squares: Double?
            var finite: Bool
        }
        var tensors: [String: Statistics]
    }
}
