package main

import (
	"context"
	"fmt"
	"log"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

func main() {
	layout, err := instance.LoadLayoutFile("/etc/fleetsafe/layouts.d/tracim.yml")
	if err != nil {
		log.Fatal(err) // names file, line, key and value
	}
	// The host's other layouts: no two components of any of them may
	// denote the same path, database or unit, nor contain one another.
	host, err := instance.LoadLayoutsDir(instance.DefaultLayoutsDir, true)
	if err != nil {
		log.Fatal(err) // names the file that does not parse
	}
	if err := layout.WithHost(host); err != nil {
		log.Fatal(err) // *instance.OverlapError: both files, lines, keys and an example
	}
	ctx := context.Background()
	insts, err := layout.Discover(ctx, instance.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, i := range insts {
		fmt.Println(i.Name, i.Status, i.SizeBytes)
	}
	target, err := layout.Resolve(ctx, "acme", instance.Options{})
	if err != nil {
		log.Fatal(err) // *instance.InvalidNameError, *instance.NotFoundError, …
	}
	fmt.Println(target.Fingerprint())
}
