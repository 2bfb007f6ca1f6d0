import Foundation

/// Who a session is: what its durable snapshots record besides the optimizer state.
struct SessionIdentity: Sendable {
    let id: String
    let name: String?
    let token: TokenDigest
    let createdAt: Date
}
