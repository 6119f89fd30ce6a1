#version 330 core
// One point per Gaussian in, one quad out; the index buffer lists the Gaussians back to front.
// (Per-splat work runs once here, not once per corner: software GL is bound by vertex work.)
// EWA: 3D covariance (precomputed from scale and rotation) -> camera -> 2D conic through the
// clamped perspective Jacobian, plus a 0.3 px dilation, as gsplat does. The quad is aligned with the
// conic's eigenvectors and reaches exactly where opacity * exp(-d^2/2) falls to ALPHA_MIN.

uniform sampler2D u_mean;    // texel id: (x, y, z, opacity)
uniform sampler2D u_cov;     // texels 2 id, 2 id + 1: (xx, xy, xz, yy), (yz, zz, part, 0)
uniform sampler2D u_sh;      // texels K id + k: (r, g, b, 0) SH coefficient k
uniform int u_tex_width;
uniform int u_num_sh;        // K in {1, 4, 9, 16}
uniform mat4 u_view;         // world -> OpenCV camera
uniform vec4 u_intrinsics;   // fx, fy, cx, cy (pixels)
uniform vec2 u_size;         // width, height (pixels)
uniform vec3 u_cam_pos;      // camera centre (world)
uniform float u_near;
uniform float u_far;
uniform float u_dilation;    // added to the 2D covariance diagonal (pixels^2)
uniform int u_color_mode;    // 0: SH colour, 1: part-label colour
uniform vec3 u_part_colors[8];
uniform float u_opacity_scale;
uniform bool u_flip_y;       // true: framebuffer row 0 is the image's top row (read back without a flip)

layout(points) in;
layout(triangle_strip, max_vertices = 4) out;

flat in int v_id[];

out vec2 v_offset;           // pixel offset from the projected centre (OpenCV pixel axes)
flat out vec3 v_conic;       // inverse 2D covariance (a, b, c)
flat out vec4 v_color;       // rgb, opacity

const float ALPHA_MIN = 1.0 / 255.0;
const float SH_C0 = 0.28209479177387814;
const float SH_C1 = 0.4886025119029199;
const float SH_C2[5] = float[](1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396);
const float SH_C3[7] = float[](-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658, 1.445305721320277, -0.5900435899266435);

ivec2 texel(int i) { return ivec2(i % u_tex_width, i / u_tex_width); }
vec3 sh(int id, int k) { return texelFetch(u_sh, texel(id * u_num_sh + k), 0).rgb; }


vec3 sh_color(int id, vec3 dir) {
    vec3 c = SH_C0 * sh(id, 0);
    if (u_num_sh > 1) {
        float x = dir.x, y = dir.y, z = dir.z;
        c += SH_C1 * (-y * sh(id, 1) + z * sh(id, 2) - x * sh(id, 3));
        if (u_num_sh > 4) {
            float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
            c += SH_C2[0] * xy * sh(id, 4) + SH_C2[1] * yz * sh(id, 5) + SH_C2[2] * (2.0 * zz - xx - yy) * sh(id, 6)
               + SH_C2[3] * xz * sh(id, 7) + SH_C2[4] * (xx - yy) * sh(id, 8);
            if (u_num_sh > 9) {
                c += SH_C3[0] * y * (3.0 * xx - yy) * sh(id, 9) + SH_C3[1] * xy * z * sh(id, 10)
                   + SH_C3[2] * y * (4.0 * zz - xx - yy) * sh(id, 11)
                   + SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh(id, 12)
                   + SH_C3[4] * x * (4.0 * zz - xx - yy) * sh(id, 13) + SH_C3[5] * z * (xx - yy) * sh(id, 14)
                   + SH_C3[6] * x * (xx - 3.0 * yy) * sh(id, 15);
            }
        }
    }
    return max(c + 0.5, vec3(0.0));
}

void main() {
    int id = v_id[0];
    vec4 mean_opacity = texelFetch(u_mean, texel(id), 0);
    float opacity = mean_opacity.w * u_opacity_scale;
    vec3 p = (u_view * vec4(mean_opacity.xyz, 1.0)).xyz;
    if (p.z < u_near || p.z > u_far || opacity < ALPHA_MIN) return;

    vec4 c0 = texelFetch(u_cov, texel(2 * id), 0);
    vec4 c1 = texelFetch(u_cov, texel(2 * id + 1), 0);
    mat3 cov_world = mat3(c0.x, c0.y, c0.z, c0.y, c0.w, c1.x, c0.z, c1.x, c1.y);
    mat3 R = mat3(u_view);
    mat3 cov_cam = R * cov_world * transpose(R);

    float fx = u_intrinsics.x, fy = u_intrinsics.y, cx = u_intrinsics.z, cy = u_intrinsics.w;
    // Clamp the Jacobian's lateral terms to 1.3 x the field of view, as gsplat and 3DGS do.
    vec2 tan_fov = 0.5 * u_size / vec2(fx, fy);
    vec2 lim_pos = (u_size - vec2(cx, cy)) / vec2(fx, fy) + 0.3 * tan_fov;
    vec2 lim_neg = vec2(cx, cy) / vec2(fx, fy) + 0.3 * tan_fov;
    float rz = 1.0 / p.z;
    vec2 t = p.z * clamp(p.xy * rz, -lim_neg, lim_pos);
    // Rows of the 2x3 Jacobian d(pixel)/d(camera point).
    vec3 j0 = vec3(fx * rz, 0.0, -fx * t.x * rz * rz);
    vec3 j1 = vec3(0.0, fy * rz, -fy * t.y * rz * rz);
    float a = dot(j0, cov_cam * j0) + u_dilation;
    float b = dot(j0, cov_cam * j1);
    float c = dot(j1, cov_cam * j1) + u_dilation;
    float det = a * c - b * b;
    if (det <= 0.0) return;
    vec2 center = vec2(fx * p.x * rz + cx, fy * p.y * rz + cy);

    // Eigen-decomposition of the 2D covariance for a tight, oriented footprint.
    float mid = 0.5 * (a + c);
    float disc = sqrt(max(mid * mid - det, 0.0));
    float l1 = mid + disc;
    float l2 = max(mid - disc, 1e-8);
    vec2 v1 = abs(b) > 1e-12 ? normalize(vec2(b, l1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    vec2 v2 = vec2(-v1.y, v1.x);
    float r = sqrt(2.0 * log(opacity / ALPHA_MIN));  // Mahalanobis radius where alpha = ALPHA_MIN
    vec2 axis1 = (r * sqrt(l1)) * v1;
    vec2 axis2 = (r * sqrt(l2)) * v2;
    // Off-screen footprints emit nothing.
    vec2 half_extent = abs(axis1) + abs(axis2);
    if (any(lessThan(center + half_extent, vec2(0.0))) || any(greaterThan(center - half_extent, u_size))) return;
    vec3 conic = vec3(c, -b, a) / det;
    vec3 rgb;
    if (u_color_mode == 1) {
        rgb = u_part_colors[clamp(int(c1.z + 0.5), 0, 7)];
    } else {
        rgb = sh_color(id, normalize(mean_opacity.xyz - u_cam_pos));
    }
    vec4 color = vec4(rgb, opacity);
    for (int k = 0; k < 4; ++k) {
        vec2 corner = vec2(float(k & 1), float(k >> 1)) * 2.0 - 1.0;
        vec2 offset = corner.x * axis1 + corner.y * axis2;
        vec2 pixel = center + offset;
        float ndc_y = 1.0 - 2.0 * pixel.y / u_size.y;
        gl_Position = vec4(2.0 * pixel.x / u_size.x - 1.0, u_flip_y ? -ndc_y : ndc_y, 0.0, 1.0);
        v_offset = offset;
        v_conic = conic;
        v_color = color;
        EmitVertex();
    }
    EndPrimitive();
}
