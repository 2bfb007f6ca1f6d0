extension String {
    /// The string as an error message or a log line quotes client input: whole when it has at most
    /// `limit` Unicode scalars, else its first `limit` scalars and "…".
    ///
    /// Every place that quotes a value, key, name, id or path from a request into a problem's
    /// detail or a log line goes through this, so a hostile request (a megabyte of `__metadata__`,
    /// of a hyperparameter, of a URL) cannot make either one long. It counts scalars rather than
    /// characters because one character may carry any number of combining marks, and reads at most
    /// `limit` + 1 of them.
    public func abbreviated(to limit: Int) -> String {
        let scalars = unicodeScalars
        var end = scalars.startIndex
        var count = 0
        while count < limit, end < scalars.endIndex {
            scalars.formIndex(after: &end)
            count += 1
        }
        return end == scalars.endIndex ? self : String(scalars[..<end]) + "…"
    }

    /// ``abbreviated(to:)`` 100 scalars: for one quoted value, key, name or id.
    public var abbreviated: String { abbreviated(to: 100) }
}
