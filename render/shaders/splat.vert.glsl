#version 330 core
// Passes the Gaussian id (the index buffer lists ids back to front) to the geometry stage.
flat out int v_id;

void main() {
    v_id = gl_VertexID;
}
