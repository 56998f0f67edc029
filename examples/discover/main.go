package main

import (
	"context"
	"fmt"
	"log"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

func main() {
	layout, err := instance.LoadLayoutFile("/etc/fleetsafe/tracim.yml")
	if err != nil {
		log.Fatal(err) // names file, line, key and value
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
