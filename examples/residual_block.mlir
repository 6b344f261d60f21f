// Two pre-norm transformer blocks' worth of normalization for a hidden size
// of 1024 in bf16: the attention output is added to the residual stream,
// which is then normalized (LayerNorm), and again after the MLP (RMSNorm
// into a local f32 temporary nobody else reads).
func.func @pre_norm_blocks(%attn: memref<?x1024xbf16>, %mlp: memref<?x1024xbf16>,
                           %stream: memref<?x1024xbf16>,
                           %ln_g: memref<1024xbf16>, %ln_b: memref<1024xbf16>,
                           %rms_g: memref<1024xbf16>,
                           %h1: memref<?x1024xbf16>, %h2: memref<?x1024xbf16>) {
  norm.add %attn, %stream -> %stream : memref<?x1024xbf16>, memref<?x1024xbf16> -> memref<?x1024xbf16>
  norm.layer_norm x(%stream : memref<?x1024xbf16>) gamma(%ln_g : memref<1024xbf16>) beta(%ln_b : memref<1024xbf16>)
      -> y(%h1 : memref<?x1024xbf16>) eps = 1.0e-05 config = #norm.config<cpu, vector_width = 16, accumulators = 2>

  %c0 = arith.constant 0 : index
  %rows = memref.dim %mlp, %c0 : memref<?x1024xbf16>
  %t = memref.alloc(%rows) : memref<?x1024xf32>
  norm.add %mlp, %stream -> %t : memref<?x1024xbf16>, memref<?x1024xbf16> -> memref<?x1024xf32>
  norm.rms_norm x(%t : memref<?x1024xf32>) gamma(%rms_g : memref<1024xbf16>)
      -> y(%h2 : memref<?x1024xbf16>) eps = 1.0e-06
  memref.dealloc %t : memref<?x1024xf32>
  return
}
