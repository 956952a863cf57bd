package models_test

import (
	"fmt"

	"github.com/residual-nn/residual/models"
)

// A model config read from a checkpoint is checked before anything is
// built: here one asking for a 4-million-channel stage.
func ExampleConfig_Validate() {
	c, err := models.Unmarshal(`{"name":"x","resnet":{"block":"basic","layers":[2],"widths":[4000000],` +
		`"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Validate())
	// Output: models: x: resnet: widths[0] 4000000 outside [1, 65536] (limits.Channels)
}
