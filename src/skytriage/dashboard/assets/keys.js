// skytriage dashboard: label the open frame with one key press (or a click on a label
// button) through the JSON API, and walk frames with the arrow keys.
// The keys come from the page: every label button carries data-label and data-key.
(function () {
    "use strict";

    function openFrame() {
        const view = document.getElementById("view-frame");
        const info = document.getElementById("frame-info");
        if (!view || !info || view.style.display === "none" || !info.textContent) {
            return null;
        }
        return JSON.parse(info.textContent);
    }

    function labelOfKey(key) {
        const button = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
        return button ? button.dataset.label : null;
    }

    async function storeLabel(label) {
        const frame = openFrame();
        if (!frame) {
            return;
        }
        const userInput = document.getElementById("user");
        const user = (userInput && userInput.value.trim()) || "anonymous";
        let saved;
        try {
            const response = await fetch("/api/labels", {
                method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({path: frame.path, frame: frame.frame, label, user}),
            });
            saved = Object.assign({status: response.status}, await response.json());
        } catch (err) {
            saved = {status: 0, error: String(err)};
        }
        saved.at = Date.now();
        window.dash_clientside.set_props("label-saved", {data: saved});
    }

    function isTyping(target) {
        const tag = target.tagName;
        return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
    }

    document.addEventListener("keydown", (event) => {
        if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) {
            return;
        }
        if (!openFrame()) {
            return;
        }
        const label = labelOfKey(event.key);
        if (label) {
            event.preventDefault();
            storeLabel(label);
        } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
            event.preventDefault();
            const id = event.key === "ArrowLeft" ? "frame-prev" : "frame-next";
            const link = document.getElementById(id);
            if (link) {
                link.click();
            }
        }
    });

    document.addEventListener("click", (event) => {
        const button = event.target.closest("[data-label]");
        if (button) {
            storeLabel(button.dataset.label);
        }
    });
})();
