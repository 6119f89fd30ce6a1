#version 430
// Sort keys for back-to-front order: key = -depth (ascending sort puts the farthest first).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer Keys { float keys[]; };
layout(std430, binding = 1) buffer Values { uint values[]; };
uniform sampler2D u_mean;  // texel id: (x, y, z, opacity)
uniform int u_tex_width;
uniform uint u_count;      // real Gaussians; the rest up to the padded size sort last
uniform vec4 u_depth_row;  // third row of world -> camera

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= uint(keys.length())) return;
    if (i < u_count) {
        int id = int(i);
        vec3 p = texelFetch(u_mean, ivec2(id % u_tex_width, id / u_tex_width), 0).xyz;
        keys[i] = -(dot(u_depth_row.xyz, p) + u_depth_row.w);
    } else {
        keys[i] = 3.0e38;
    }
    values[i] = i;
}
