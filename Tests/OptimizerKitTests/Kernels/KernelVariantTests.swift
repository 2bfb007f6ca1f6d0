import Testing

@testable import OptimizerKit

struct KernelVariantTests {
    @Test func withoutTheVariableTheBestSupportedVariantIsChosen() throws {
        #expect(try KernelVariant.select(environment: [:]) == KernelVariant.best)
        #expect(try KernelVariant.select(environment: ["OPTIMIZERD_KERNELS": ""]) == KernelVariant.best)
        #expect(KernelVariant.best.isSupportedByThisCPU)
        #expect(KernelVariant.supported.first == .baseline)
    }

    @Test(arguments: KernelVariant.allCases)
    func aNamedVariantIsChosenWhenThisCPURunsItAndRefusedOtherwise(variant: KernelVariant) throws {
        let environment = ["OPTIMIZERD_KERNELS": variant.rawValue]
        if variant.isSupportedByThisCPU {
            #expect(try KernelVariant.select(environment: environment) == variant)
        } else {
            let error = #expect(throws: KernelVariant.SelectionError.self) { try KernelVariant.select(environment: environment) }
            #expect(error?.description.contains("does not run it") == true)
        }
    }

    @Test func anUnknownNameIsRefusedNamingTheChoices() {
        let error = #expect(throws: KernelVariant.SelectionError.self) {
            try KernelVariant.select(environment: ["OPTIMIZERD_KERNELS": "sse9"])
        }
        #expect(error?.description == "OPTIMIZERD_KERNELS=sse9 is not a kernel variant (one of baseline, avx2, avx512)")
    }
}
