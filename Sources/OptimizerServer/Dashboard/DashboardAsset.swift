import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// One file of the dashboard (`GET /`): its path, content type, bytes and entity tag.
///
/// The files live in `Dashboard/Resources` and are compiled into the binary (SwiftPM
/// `.embedInCode` resources, exposed as `PackageResources`), so the daemon serves them the same from
/// any working directory, in release builds and in the container, and a page never loads anything
/// from elsewhere.
///
/// Every answer carries a strict Content-Security-Policy (only this origin; no inline script or
/// style, no forms, no framing) and `Cache-Control: no-cache` with an `ETag`: the browser keeps
/// its copy and revalidates it on each load, so a new daemon's page is never stale and an unchanged
/// one costs a `304`.
struct DashboardAsset: Sendable {
    /// The request path, e.g. `/dashboard/dashboard.js`.
    let path: String
    let contentType: String
    let body: ByteBuffer
    /// A strong entity tag: the start of the SHA-256 of the bytes, quoted.
    let etag: String

    init(path: String, contentType: String, bytes: [UInt8]) {
        self.path = path
        self.contentType = contentType
        self.body = ByteBuffer(bytes: bytes)
        self.etag = "\"" + SHA256.hash(bytes).prefix(12).map { String($0 >> 4, radix: 16) + String($0 & 0xf, radix: 16) }.joined() + "\""
    }

    /// The page and the files it loads.
    static let all: [DashboardAsset] = [
        DashboardAsset(path: "/", contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html),
        DashboardAsset(path: "/dashboard/charts.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.charts_js),
        DashboardAsset(path: "/dashboard/chart-specs.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.chart_specs_js),
        DashboardAsset(path: "/dashboard/dashboard.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.dashboard_js),
        DashboardAsset(path: "/dashboard/dashboard.css", contentType: "text/css; charset=utf-8", bytes: PackageResources.dashboard_css),
        DashboardAsset(path: "/dashboard/favicon.svg", contentType: "image/svg+xml", bytes: PackageResources.favicon_svg),
    ]

    /// Only this origin, nothing inline; `fetch` only to this origin (the API).
    static let contentSecurityPolicy = [
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ].joined(separator: "; ")

    /// `200` with the file, or `304` when the request's `If-None-Match` names the current version.
    func response(to request: Request) -> Response {
        var headers: HTTPFields = [
            .eTag: etag,
            .cacheControl: "no-cache",
            .contentSecurityPolicy: Self.contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
            HTTPField.Name("X-Frame-Options")!: "DENY",
        ]
        if let candidates = request.headers[.ifNoneMatch], Self.matches(candidates, etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// Whether an `If-None-Match` value (`*`, or a list of tags, weak or strong) names `etag`.
    static func matches(_ ifNoneMatch: String, _ etag: String) -> Bool {
        ifNoneMatch.split(separator: ",").contains { candidate in
            let tag = candidate.trimmingCharacters(in: .whitespaces)
            return tag == "*" || tag == etag || tag == "W/" + etag
        }
    }
}
