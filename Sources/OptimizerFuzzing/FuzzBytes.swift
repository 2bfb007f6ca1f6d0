/// A private, exact-size copy of (part of) a fuzz input.
///
/// libFuzzer's buffer is one allocation; a body cut out of it would have neighbours, so a read past
/// its end could go unnoticed. Each body gets its own allocation instead, which AddressSanitizer
/// guards on both sides, and which starts aligned like a network buffer (so aligned `F32` data
/// takes the zero-copy path, as it does in the daemon).
struct FuzzBytes {
    let buffer: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        copy.copyMemory(from: bytes)
        buffer = UnsafeRawBufferPointer(copy)
    }

    func release() {
        buffer.deallocate()
    }
}
