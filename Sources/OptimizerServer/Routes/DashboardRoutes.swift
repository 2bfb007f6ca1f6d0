import Hummingbird

/// `GET /` and `/dashboard/*`: the dashboard's page, script, style sheet and icon (see
/// ``DashboardAsset``). No authentication: the files hold no data; the page asks for a token and
/// sends it only in the `Authorization` header of its API calls.
struct DashboardRoutes {
    typealias Context = OptimizerRequestContext

    func add(to router: some RouterMethods<Context>) {
        for asset in DashboardAsset.all {
            router.get(RouterPath(asset.path)) { request, _ in asset.response(to: request) }
        }
    }
}
