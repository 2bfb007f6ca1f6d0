import HTTPTypes
import Hummingbird
import Synchronization

/// The methods every route path answers, so that a known path asked with another method gets
/// `405 Method Not Allowed` and an `Allow` header instead of the router's 404.
///
/// Hummingbird's router does not say which methods a path has, so ``RecordingRouter`` writes each
/// route here as it registers it: the table and the router are filled by the same call and cannot
/// drift apart. Filled while the application is built, read by ``ProblemMiddleware`` afterwards.
final class RouteMethods: Sendable {
    private let routes = Mutex<[(path: RouterPath, methods: [HTTPRequest.Method])]>([])

    init() {}

    /// Records that `path` answers `method`.
    func record(_ path: RouterPath, _ method: HTTPRequest.Method) {
        routes.withLock { routes in
            if let index = routes.firstIndex(where: { $0.path == path }) {
                if !routes[index].methods.contains(method) { routes[index].methods.append(method) }
            } else {
                routes.append((path, [method]))
            }
        }
    }

    /// The methods of the route paths that match a request path, in the order they were
    /// registered; empty when no route matches the path at all (a 404).
    func allowed(for requestPath: String) -> [HTTPRequest.Method] {
        let segments = requestPath.split(separator: "/", omittingEmptySubsequences: true)
        return routes.withLock { routes in
            var methods: [HTTPRequest.Method] = []
            for route in routes where Self.path(route.path, matches: segments) {
                for method in route.methods where !methods.contains(method) { methods.append(method) }
            }
            return methods
        }
    }

    /// Whether a route path matches the segments of a request path as Hummingbird's router would:
    /// each component one segment (literal, `{capture}` or wildcard), `**` the rest.
    private static func path(_ path: RouterPath, matches segments: [Substring]) -> Bool {
        var index = 0
        for component in path.components {
            if component == .recursiveWildcard { return true }
            guard index < segments.count, component ~= segments[index] else { return false }
            index += 1
        }
        return index == segments.count
    }
}
