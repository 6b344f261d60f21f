//===- NormEnums.td - enums of the norm dialect ------------*- tablegen -*-===//
//
// Part of normjit. The enumerated knobs of #norm.config.
//
//===----------------------------------------------------------------------===//

#ifndef NORMJIT_DIALECT_NORM_IR_NORMENUMS_TD
#define NORMJIT_DIALECT_NORM_IR_NORMENUMS_TD

include "mlir/IR/EnumAttr.td"

def Norm_BackendCPU : I32EnumAttrCase<"CPU", 0, "cpu">;
def Norm_BackendGPU : I32EnumAttrCase<"GPU", 1, "gpu">;
def Norm_Backend : I32EnumAttr<"Backend", "target backend of a kernel",
    [Norm_BackendCPU, Norm_BackendGPU]> {
  let cppNamespace = "::normjit::norm";
  let genSpecializedAttr = 0;
}

def Norm_AlgorithmTwoPass : I32EnumAttrCase<"TwoPass", 0, "two_pass">;
def Norm_AlgorithmWelford : I32EnumAttrCase<"Welford", 1, "welford">;
def Norm_Algorithm : I32EnumAttr<"Algorithm",
    "how row statistics are computed on the CPU",
    [Norm_AlgorithmTwoPass, Norm_AlgorithmWelford]> {
  let cppNamespace = "::normjit::norm";
  let genSpecializedAttr = 0;
}

def Norm_RowStorageRegisters : I32EnumAttrCase<"Registers", 0, "registers">;
def Norm_RowStorageShared : I32EnumAttrCase<"Shared", 1, "shared">;
def Norm_RowStorageGlobal : I32EnumAttrCase<"Global", 2, "global">;
def Norm_RowStorage : I32EnumAttr<"RowStorage",
    "where a GPU kernel keeps a row between its passes",
    [Norm_RowStorageRegisters, Norm_RowStorageShared,
     Norm_RowStorageGlobal]> {
  let cppNamespace = "::normjit::norm";
  let genSpecializedAttr = 0;
}

#endif // NORMJIT_DIALECT_NORM_IR_NORMENUMS_TD
