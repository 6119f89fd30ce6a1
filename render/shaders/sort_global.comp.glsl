#version 430
// One bitonic compare-exchange step with a stride too large for shared memory.
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Keys { float keys[]; };
layout(std430, binding = 1) buffer Values { uint values[]; };
uniform uint u_k;  // size of the bitonic sequences being merged
uniform uint u_j;  // compare distance

void main() {
    uint t = gl_GlobalInvocationID.x;
    uint i = 2u * t - (t & (u_j - 1u));
    uint l = i + u_j;
    if (l >= uint(keys.length())) return;
    bool ascending = (i & u_k) == 0u;
    float a = keys[i], b = keys[l];
    if (ascending ? a > b : a < b) {
        keys[i] = b; keys[l] = a;
        uint v = values[i]; values[i] = values[l]; values[l] = v;
    }
}
