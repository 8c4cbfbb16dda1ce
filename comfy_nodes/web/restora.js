// Restora for ComfyUI: show each Restora node's report (the assessed score, the restore
// summary, the gate's choice) on the node after it runs, in a read-only text box that is not
// saved with the workflow. The Python side sends it as the node's UI output {"text": [...]}.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const WIDGET = "restora_report";

app.registerExtension({
  name: "Restora.ShowReport",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.name.startsWith("Restora")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text?.[0];
      if (text === undefined) return;
      let widget = this.widgets?.find((w) => w.name === WIDGET);
      if (!widget) {
        widget = ComfyWidgets.STRING(this, WIDGET, ["STRING", { multiline: true }], app).widget;
        widget.element.readOnly = true;
        widget.serialize = false;
      }
      widget.value = text;
      this.setDirtyCanvas?.(true, true);
    };
  },
});
