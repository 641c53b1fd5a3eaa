#!/bin/sh
# Regenerates the Vector256/Vector512 span kernels from the hand-written Vector128 ones.
set -e
cd "$(dirname "$0")/../src/MicroLm/Math"
for w in 256 512; do
  { echo "// GENERATED from DetMath.Simd128.cs by tools/gen_simd.sh; do not edit by hand."
    sed -e "s/Vector128/Vector$w/g" -e "s/V128/V$w/g" DetMath.Simd128.cs; } > DetMath.Simd$w.cs
done
