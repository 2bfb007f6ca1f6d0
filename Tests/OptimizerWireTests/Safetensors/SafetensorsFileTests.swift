import Testing

@testable import OptimizerWire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct SafetensorsFileTests {
    @Test func initFromDataMatchesInitFromBytes() throws {
        let fromData = try SafetensorsFile(data: Data(GoldenFixtureTests.withMetadata))
        let fromBytes = try SafetensorsFile(bytes: GoldenFixtureTests.withMetadata)
        #expect(fromData.bytes == fromBytes.bytes)
        #expect(fromData.tensors == fromBytes.tensors)
        #expect(fromData.metadata == fromBytes.metadata)
    }

    @Test func initValidates() {
        expectSafetensorsError(.bufferTooShort) { _ = try SafetensorsFile(data: Data([1, 2, 3])) }
        expectSafetensorsError(.headerTooLarge) {
            _ = try SafetensorsFile(bytes: GoldenFixtureTests.f32, limits: .init(maxHeaderBytes: 8))
        }
    }

    @Test func errorsDescribeThemselves() {
        do {
            _ = try SafetensorsFile(
                bytes: safetensors(header: #"{"w": {"dtype": "F99", "shape": [], "data_offsets": [0, 4]}}"#)
            )
        } catch let error as SafetensorsError {
            #expect(error.code == .unknownDType)
            #expect(error.code.description == "unknownDType")
            #expect("\(error)" == "tensor 'w': unknown dtype 'F99'")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
