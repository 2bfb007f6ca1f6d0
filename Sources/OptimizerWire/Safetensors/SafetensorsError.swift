/// An error reading or writing a safetensors buffer, or scattering a sparse tensor.
///
/// ``code`` says what kind of problem it is (match on it); ``description`` says exactly what
/// is wrong in words a client can act on, naming the tensor, field or metadata key, for example
/// `tensor 'layer.0.weight': shape [2, 3] of F32 is 24 bytes but data_offsets [0, 20] span 20`.
/// ``tensorName`` repeats the tensor's name when the error is about one tensor.
///
/// New codes may be added in later versions without breaking callers, in the manner of
/// `ServiceRunnerError` (swift-service-lifecycle).
public struct SafetensorsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem an error reports.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case bufferTooShort
            case invalidHeaderLength
            case headerTooLarge
            case invalidJSON
            case duplicateKey
            case headerNotObject
            case limitExceeded
            case invalidTensorEntry
            case unknownDType
            case invalidShape
            case sizeOverflow
            case sizeMismatch
            case invalidOffsets
            case overlappingTensors
            case gapBetweenTensors
            case trailingBytes
            case invalidMetadata
            case unsupportedDType
            case tensorNotFound
            case elementCountMismatch
            case integerOutOfRange
            case invalidSparseTensor
            case sparseIndexOutOfRange
            case duplicateSparseIndex
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// A short identifier of the code, such as `"gapBetweenTensors"`.
        public var description: String { base.rawValue }

        /// The buffer is shorter than the 8-byte header length prefix.
        public static let bufferTooShort = Code(.bufferTooShort)
        /// The header length is 0 or runs past the end of the buffer.
        public static let invalidHeaderLength = Code(.invalidHeaderLength)
        /// The header length is larger than ``SafetensorsHeader/Limits/maxHeaderBytes``.
        public static let headerTooLarge = Code(.headerTooLarge)
        /// The header is not valid UTF-8 JSON, or nests deeper than the limit.
        public static let invalidJSON = Code(.invalidJSON)
        /// A JSON object in the header, or a writer, has the same key twice.
        public static let duplicateKey = Code(.duplicateKey)
        /// The header's JSON value is not an object.
        public static let headerNotObject = Code(.headerNotObject)
        /// Too many tensors, a name too long, or a rank too large (see ``SafetensorsHeader/Limits``).
        public static let limitExceeded = Code(.limitExceeded)
        /// A tensor entry is not an object, misses `dtype`/`shape`/`data_offsets`, or has other fields.
        public static let invalidTensorEntry = Code(.invalidTensorEntry)
        /// The `dtype` string is not a safetensors dtype.
        public static let unknownDType = Code(.unknownDType)
        /// The shape is not an array of non-negative integers.
        public static let invalidShape = Code(.invalidShape)
        /// The element or byte count of a shape does not fit in an `Int`.
        public static let sizeOverflow = Code(.sizeOverflow)
        /// The shape and dtype do not describe as many bytes as `data_offsets` span.
        public static let sizeMismatch = Code(.sizeMismatch)
        /// `data_offsets` are not two integers `begin <= end` inside the data section.
        public static let invalidOffsets = Code(.invalidOffsets)
        /// Two tensors share bytes.
        public static let overlappingTensors = Code(.overlappingTensors)
        /// Bytes between two tensors, or before the first one, belong to no tensor.
        public static let gapBetweenTensors = Code(.gapBetweenTensors)
        /// Bytes after the last tensor belong to no tensor.
        public static let trailingBytes = Code(.trailingBytes)
        /// `__metadata__` is not an object of string values.
        public static let invalidMetadata = Code(.invalidMetadata)
        /// The tensor's dtype is valid but cannot be read or written the way that was asked.
        public static let unsupportedDType = Code(.unsupportedDType)
        /// No tensor has the requested name.
        public static let tensorNotFound = Code(.tensorNotFound)
        /// The element count differs from what the caller provided or expected.
        public static let elementCountMismatch = Code(.elementCountMismatch)
        /// An integer element does not fit in `Int`.
        public static let integerOutOfRange = Code(.integerOutOfRange)
        /// A sparse pair is incomplete, has the wrong dtypes or ranks, or lengths that differ.
        public static let invalidSparseTensor = Code(.invalidSparseTensor)
        /// A sparse index is negative or not less than the dense element count.
        public static let sparseIndexOutOfRange = Code(.sparseIndexOutOfRange)
        /// A sparse index appears more than once.
        public static let duplicateSparseIndex = Code(.duplicateSparseIndex)
    }

    /// What kind of problem this is.
    public let code: Code
    /// The tensor the error is about, when it is about one tensor.
    public let tensorName: String?
    /// A sentence that says exactly what is wrong, naming the tensor, field or key.
    public let description: String

    /// Creates an error; the library builds these at the place it finds the problem.
    init(_ code: Code, tensor tensorName: String? = nil, _ description: String) {
        self.code = code
        self.tensorName = tensorName
        self.description = description
    }
}
