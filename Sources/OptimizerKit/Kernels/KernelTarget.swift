/// The instruction set OptimizerKit's Swift kernels were compiled for (see `kernelSettings` in
/// Package.swift); the C kernels pick theirs at run time (``KernelVariant``).
public enum KernelTarget {
    /// "AVX2" when OptimizerKit was built for x86-64-v3, nil for a portable build.
    public static let requiredInstructionSet: String? = {
        #if OPTIMIZERD_KERNELS_AVX2
        return "AVX2"
        #else
        return nil
        #endif
    }()

    /// Whether this CPU can run the kernels. Ask before the first step: on a CPU without the
    /// instruction set the kernels stop with an illegal-instruction signal.
    public static var isSupportedByThisCPU: Bool {
        requiredInstructionSet == nil || KernelVariant.avx2.isSupportedByThisCPU
    }
}
