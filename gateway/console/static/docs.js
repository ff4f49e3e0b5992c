// /docs: Swagger UI (vendored, no CDN) over the gateway's own OpenAPI document.
window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true });
