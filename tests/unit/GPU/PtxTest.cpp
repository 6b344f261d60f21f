// scratch
#include "normjit/JIT/GpuKernelCompiler.h"
#include <cstdio>
int main(int argc, char **argv) {
  normjit_kernel_spec_t spec = normjit_kernel_spec_default(NORMJIT_LAYER_NORM, argc > 1 ? atoi(argv[1]) : 1000);
  spec.x_dtype = spec.y_dtype = NORMJIT_BF16; spec.has_gamma = spec.has_beta = 1; spec.gamma_dtype = spec.beta_dtype = NORMJIT_BF16;
  spec.has_residual = 1; spec.residual_dtype = NORMJIT_BF16; spec.store_sum = 1; spec.sum_dtype = NORMJIT_BF16; spec.store_mean = spec.store_rstd = 1;
  normjit::GpuConfig config = normjit::getDefaultGpuConfig(spec);
  if (argc > 2) { auto c = normjit::parseGpuConfig(argv[2], config); if (!c) { fprintf(stderr, "%s\n", llvm::toString(c.takeError()).c_str()); return 1;} config = *c; }
  fprintf(stderr, "%s\n", config.str().c_str());
  auto t = normjit::parseGpuChip(argc > 3 ? argv[3] : "sm_90");
  auto image = normjit::compileGpuPtx({{spec, config, "k"}}, *t);
  if (!image) { fprintf(stderr, "%s\n", llvm::toString(image.takeError()).c_str()); return 1; }
  fprintf(stderr, "%.1f ms\n", image->compileMillis);
  fputs(image->ptx.c_str(), stdout);
}
