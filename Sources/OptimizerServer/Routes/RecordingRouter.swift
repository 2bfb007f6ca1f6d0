import HTTPTypes
import Hummingbird

/// Registers routes on a Hummingbird router and records each one's path and method in
/// ``RouteMethods``.
///
/// Every route file adds its routes through this (groups included: a `RouterGroup` registers
/// through its parent's `on(_:method:responder:)`), so the 405 answers always know every route.
struct RecordingRouter<Context: RequestContext>: RouterMethods {
    let router: Router<Context>
    let methods: RouteMethods

    @discardableResult
    func on<Responder: HTTPResponder>(_ path: RouterPath, method: HTTPRequest.Method, responder: Responder) -> Self
    where Responder.Context == Context {
        methods.record(path, method)
        router.on(path, method: method, responder: responder)
        return self
    }

    /// Adds middleware to the router itself: it applies to the routes registered after it.
    @discardableResult
    func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }
}
