#version 330 core
// Gaussian falloff of one splat, premultiplied for "over" compositing (blend ONE, ONE_MINUS_SRC_ALPHA).

in vec2 v_offset;
flat in vec3 v_conic;
flat in vec4 v_color;

uniform float u_alpha_max;   // per-splat alpha clamp (the reference's value)

layout(location = 0) out vec4 out_color;

void main() {
    vec2 d = v_offset;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    if (power > 0.0) discard;
    float alpha = min(u_alpha_max, v_color.a * exp(power));
    if (alpha < 1.0 / 255.0) discard;
    out_color = vec4(v_color.rgb * alpha, alpha);
}
