#include "textflag.h"

// func dot4FMA(x, m0, m1, m2, m3 []float64) (s0, s1, s2, s3 float64)
// One load of x serves four products: the permutation loop is bound by
// loads from L2, not by arithmetic.
TEXT ·dot4FMA(SB), NOSPLIT, $0-152
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ m0_base+24(FP), R8
	MOVQ m1_base+48(FP), R9
	MOVQ m2_base+72(FP), R10
	MOVQ m3_base+96(FP), R11
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-4, DX

loop4:
	CMPQ AX, DX
	JGE  reduce4
	VMOVUPD (SI)(AX*8), Y4
	VFMADD231PD (R8)(AX*8), Y4, Y0
	VFMADD231PD (R9)(AX*8), Y4, Y1
	VFMADD231PD (R10)(AX*8), Y4, Y2
	VFMADD231PD (R11)(AX*8), Y4, Y3
	ADDQ $4, AX
	JMP  loop4

reduce4:
	VEXTRACTF128 $1, Y0, X4
	VADDPD       X4, X0, X0
	VHADDPD      X0, X0, X0
	VEXTRACTF128 $1, Y1, X4
	VADDPD       X4, X1, X1
	VHADDPD      X1, X1, X1
	VEXTRACTF128 $1, Y2, X4
	VADDPD       X4, X2, X2
	VHADDPD      X2, X2, X2
	VEXTRACTF128 $1, Y3, X4
	VADDPD       X4, X3, X3
	VHADDPD      X3, X3, X3

tail4:
	CMPQ        AX, CX
	JGE         done4
	VMOVSD      (SI)(AX*8), X4
	VFMADD231SD (R8)(AX*8), X4, X0
	VFMADD231SD (R9)(AX*8), X4, X1
	VFMADD231SD (R10)(AX*8), X4, X2
	VFMADD231SD (R11)(AX*8), X4, X3
	INCQ        AX
	JMP         tail4

done4:
	VZEROUPPER
	MOVSD X0, s0+120(FP)
	MOVSD X1, s1+128(FP)
	MOVSD X2, s2+136(FP)
	MOVSD X3, s3+144(FP)
	RET
