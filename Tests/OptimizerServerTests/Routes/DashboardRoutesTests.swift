import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import OptimizerServer

/// `GET /` and `/dashboard/*`: the dashboard's files, compiled into the binary, with a strict
/// Content-Security-Policy and revalidated caching. (The page itself is tested in a real browser by
/// integration/dashboard/test_dashboard.py.)
struct DashboardRoutesTests {
    /// `Sources/OptimizerServer/Dashboard/Resources`, found from this file's path.
    static let resources = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/OptimizerServer/Dashboard/Resources")

    @Test(arguments: [
        ("/", "text/html; charset=utf-8", "index.html"),
        ("/dashboard/charts.js", "text/javascript; charset=utf-8", "charts.js"),
        ("/dashboard/chart-specs.js", "text/javascript; charset=utf-8", "chart-specs.js"),
        ("/dashboard/dashboard.js", "text/javascript; charset=utf-8", "dashboard.js"),
        ("/dashboard/dashboard.css", "text/css; charset=utf-8", "dashboard.css"),
        ("/dashboard/favicon.svg", "image/svg+xml", "favicon.svg"),
    ])
    func servesEachEmbeddedFileWithItsTypeAndAStrictPolicy(path: String, contentType: String, file: String) async throws {
        let expected = try Data(contentsOf: Self.resources.appendingPathComponent(file))
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: path, method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == contentType)
            #expect(Data(response.body.readableBytesView) == expected, "the embedded \(file) is stale: rebuild")
            let policy = try #require(response.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"))
            #expect(policy.contains("connect-src 'self'") && policy.contains("form-action 'none'"))
            #expect(!policy.contains("unsafe") && !policy.contains("http"))
            #expect(response.headers[.xContentTypeOptions] == "nosniff")
            #expect(response.headers[.cacheControl] == "no-cache")
            #expect(response.headers[.eTag]?.hasPrefix("\"") == true)
        }
    }

    @Test func answers304WhenTheBrowsersCopyIsCurrent() async throws {
        try await makeApp().test(.router) { client in
            let first = try await client.execute(uri: "/dashboard/dashboard.js", method: .get)
            let etag = try #require(first.headers[.eTag])
            let again = try await client.execute(uri: "/dashboard/dashboard.js", method: .get, headers: [.ifNoneMatch: etag])
            #expect(again.status == .notModified)
            #expect(again.body.readableBytes == 0)
            #expect(again.headers[.eTag] == etag)
            let stale = try await client.execute(uri: "/dashboard/dashboard.js", method: .get, headers: [.ifNoneMatch: "\"old\""])
            #expect(stale.status == .ok)
        }
    }

    @Test func needsNoTokenEvenWithAnAdminToken() async throws {
        try await makeApp(adminToken: "secret").test(.router) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
        }
    }

    @Test func pageLoadsNothingFromElsewhereAndRunsNoInlineScript() throws {
        for asset in DashboardAsset.all where asset.contentType.hasPrefix("text/html") || asset.contentType.hasPrefix("text/css") {
            let text = String(buffer: asset.body)
            #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "\(asset.path)")
            #expect(!text.contains("<script>") && !text.contains("style=") && !text.contains("onclick"), "\(asset.path)")
        }
        let scripts = DashboardAsset.all.filter { $0.path.hasSuffix(".js") }
        #expect(scripts.count == 3)
        for asset in scripts {
            let script = String(buffer: asset.body)
            #expect(!script.contains("innerHTML") && !script.contains("eval("), "\(asset.path)")
            #expect(!script.contains("localStorage."), "the token is kept in sessionStorage only: \(asset.path)")
        }
    }

    @Test(arguments: [
        ("\"abc\"", true), ("W/\"abc\"", true), ("\"x\", \"abc\"", true), ("*", true), ("\"abcd\"", false), ("abc", false),
    ])
    func ifNoneMatchNamesTheTag(header: String, matches: Bool) {
        #expect(DashboardAsset.matches(header, "\"abc\"") == matches)
    }
}
