#version 430
// Bitonic steps with strides <= 512 inside one 1024-element block held in shared memory.
// u_k == 0: sort every block fully (k = 2 .. 1024); otherwise finish merge stage u_k (j = 512 .. 1).
layout(local_size_x = 512) in;
layout(std430, binding = 0) buffer Keys { float keys[]; };
layout(std430, binding = 1) buffer Values { uint values[]; };
uniform uint u_k;
shared float sk[1024];
shared uint sv[1024];

void main() {
    uint base = gl_WorkGroupID.x * 1024u;
    uint t = gl_LocalInvocationID.x;
    sk[t] = keys[base + t];
    sv[t] = values[base + t];
    sk[t + 512u] = keys[base + t + 512u];
    sv[t + 512u] = values[base + t + 512u];
    barrier();
    uint k_first = u_k == 0u ? 2u : u_k;
    uint k_last = u_k == 0u ? 1024u : u_k;
    for (uint k = k_first; k <= k_last; k <<= 1) {
        for (uint j = min(k >> 1, 512u); j > 0u; j >>= 1) {
            uint i = 2u * t - (t & (j - 1u));
            uint l = i + j;
            bool ascending = ((base + i) & k) == 0u;
            float a = sk[i], b = sk[l];
            if (ascending ? a > b : a < b) {
                sk[i] = b; sk[l] = a;
                uint v = sv[i]; sv[i] = sv[l]; sv[l] = v;
            }
            barrier();
        }
    }
    keys[base + t] = sk[t];
    values[base + t] = sv[t];
    keys[base + t + 512u] = sk[t + 512u];
    values[base + t + 512u] = sv[t + 512u];
}
